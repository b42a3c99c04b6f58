"""The live status page the HTTP listener serves at `/`: one HTML file with its CSS
and a little vanilla JavaScript (no build step, nothing fetched from elsewhere), which
reads `/api/procs`, `/api/history` and follows `/api/events`."""

from __future__ import annotations

from importlib.resources import files


def page() -> bytes:
    """The page's bytes (read once by the caller: it never changes while running)."""
    return files(__package__).joinpath("index.html").read_bytes()
