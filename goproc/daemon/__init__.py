"""The goproc daemon: one trio nursery around the server, the liveness ticker, the
journal committer and the snapshot writer, all sharing one `Registry`."""
