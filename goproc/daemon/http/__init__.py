"""The read-only HTTP listener: `app` (the ASGI application: routes, auth, event
stream), `query` (pure: query strings to selectors, what `http_show_cmd` hides) and
`serving` (hypercorn's trio worker, bound as `http_listen` says).  Nothing here
changes the registry or signals a process."""
