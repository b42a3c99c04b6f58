"""The `goproc` command line, a thin client of the daemon's socket.

`app` holds the cyclopts app and `main`; `client` the standard-library socket client;
`flags` the shared flag groups; `output` every formatter; `commands` the commands.
Nothing is imported here, so importing a submodule costs only that submodule.
"""
