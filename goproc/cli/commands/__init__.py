"""The commands of `goproc`, one module per family; `goproc.cli.app` registers each
lazily by its import path, so a run imports only the module of the command it runs."""
