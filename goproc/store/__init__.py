"""Durable state in the state dir: the pure codecs (`format`), safe file writes
(`files`), the journal (`journal`), the snapshot writer (`writer`) and loading at start
(`load`).  Only `journal` and `writer` use trio."""
