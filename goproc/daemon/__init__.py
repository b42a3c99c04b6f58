"""The goproc daemon: `main` (lock, bind, run), `wiring` (builds every part once and runs
them in one trio nursery), `service` (the only ways the registry changes), `server` and
`connection` (the socket side), `handlers` (the method table), `exits`, `liveness`,
`events` and `probe` (the OS seam)."""
