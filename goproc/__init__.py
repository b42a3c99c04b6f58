"""goproc: a per-user process watcher daemon and its thin CLI."""

__version__ = "0.1.0"
