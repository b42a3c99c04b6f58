"""`goproc top`: the Textual app that watches, filters and acts on tracked processes.

Imported only by `goproc top` (`goproc.cli.commands.top`), so no other command pays for
Textual.  It talks to the daemon through `goproc.tui.source` (the stdlib client of the
CLI), never through trio, cattrs, psutil or the daemon's own modules.
"""
