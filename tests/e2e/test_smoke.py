"""The shortest path a user takes: start, ping, add, list, stop."""

from __future__ import annotations


def test_ping_add_list_stop(daemon, sleeper):
    p = sleeper()
    proc = daemon.call("add", {"pid": p.pid, "tags": ["db"]})
    assert proc["pid"] == p.pid and proc["alive"] is True and proc["tags"] == ["db"]
    assert [e["id"] for e in daemon.call("list", {"tags_any": ["db"]})] == [proc["id"]]
    out = daemon.cli("ping")
    assert out.returncode == 0 and out.stdout == "pong\n"
    assert daemon.stop() == 0
    assert not daemon.socket.exists()
