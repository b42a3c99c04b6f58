"""The wire, without I/O and without trio: JSON-RPC framing and errors (`jsonrpc`), the
one converter (`convert`) and the entries' fast encoding (`entries`)."""
