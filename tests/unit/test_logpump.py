"""The log pump (`goproc.logpump`), a real process fed through real pipes, driven the
way the daemon drives it (`goproc.daemon.pumping.PumpClient`).

- whatever lines come in, in whatever bursts, with whatever limit: the files read
  oldest first are exactly the bytes written (keep large enough to keep them all),
  every rotated file ends at a line's end and holds at most its limit plus one burst
  up to a line's end, and each file's index is a sequence of records with offsets
  rising within the file;
- with a small `keep`, only that many rotated files are left, and they are the newest
  bytes, in order;
- two pipes feeding one file (a restarted command while the old one's child still
  writes) both land in it; a stream's end closes the file; the pump exits once no
  stream and no daemon are left;
- the bytes go by `splice`, into the file the daemon opened `O_APPEND` and into the
  rotated ones; through the pump only what it reads to cut at a line's end (strace).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Strace, stream_files, wait_until
from hypothesis import HealthCheck, given, settings, strategies as st

from goproc.daemon.pumping import Limits, PumpClient
from goproc.logformat import LINE_SLACK, RECORD, index_of, records, rotated


@pytest.fixture(scope="module")
def pump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PumpClient]:
    root = tmp_path_factory.mktemp("pump")
    client = PumpClient(root / "goproc.sock")
    yield client
    client.close()


def feed(pump: PumpClient, where: Path, name: str, limits: Limits, *, fresh: bool = True) -> int:
    """A pipe the pump reads into `where/name`: its writing end."""
    read, write = os.pipe()
    fd = os.open(where / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    dir_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
    try:
        pump.hand_over(read, fd, dir_fd, name, limits, fresh=fresh)
    finally:
        for held in (read, fd, dir_fd):
            os.close(held)
    return write


def streams(pump: PumpClient) -> int:
    """How many pipes the pump reads (its `ping`)."""
    conn = pump._connected()
    socket.send_fds(conn, [b'{"op": "ping"}'], [])
    return int(json.loads(conn.recv(4096))["streams"])


def settle(pump: PumpClient) -> None:
    wait_until(lambda: streams(pump) == 0, 10, "every stream read to its end")


_counter = iter(range(10**9))
lines = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n"), min_size=1, max_size=200
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=lines, bursts=st.integers(1, 20), max_bytes=st.integers(4096, 20000))
def test_rotation_keeps_every_byte_in_order_and_cuts_at_line_ends(
    pump: PumpClient, tmp_path: Path, lines: list[bytes], bursts: int, max_bytes: int
) -> None:
    name = f"{next(_counter)}.out"
    write = feed(pump, tmp_path, name, Limits(max_bytes, 1000))
    data = b"".join(lines)
    step = max(1, len(data) // bursts)
    for at in range(0, len(data), step):
        os.write(write, data[at : at + step])
    os.close(write)
    settle(pump)
    files = stream_files(tmp_path, name)
    assert b"".join(f.read_bytes() for f in files) == data
    for f in files[:-1]:
        body = f.read_bytes()
        assert body.endswith(b"\n") and max_bytes <= len(body) <= max_bytes + LINE_SLACK
    for f in files:
        index = records((tmp_path / index_of(f.name)).read_bytes())
        offsets = [offset for offset, _ in index]
        assert offsets == sorted(offsets) and all(o < max(1, f.stat().st_size) for o in offsets)
        assert (f.stat().st_size == 0) == (index == [])


def test_keep_leaves_the_newest_files(pump: PumpClient, tmp_path: Path) -> None:
    write = feed(pump, tmp_path, "k.out", Limits(4096, 2))
    data = b"".join(b"%06d\n" % n for n in range(20000))  # 140 kB: 34 rotations
    os.write(write, data)
    os.close(write)
    settle(pump)
    files = stream_files(tmp_path, "k.out")
    assert len(files) == 3
    kept = b"".join(f.read_bytes() for f in files)
    assert data.endswith(kept) and kept.startswith(b"0") and len(kept) > 8192
    assert not (tmp_path / rotated("k.out", 3)).exists()
    assert not (tmp_path / index_of(rotated("k.out", 3))).exists()


def test_two_pipes_feed_one_file_and_the_index_dates_the_bursts(
    pump: PumpClient, tmp_path: Path
) -> None:
    limits = Limits(1 << 20, 3)
    first = feed(pump, tmp_path, "two.out", limits)
    os.write(first, b"old\n")
    wait_until(lambda: (tmp_path / "two.out").read_bytes() == b"old\n", 10, "the first line")
    before = time.time()
    second = feed(pump, tmp_path, "two.out", limits, fresh=False)
    time.sleep(0.01)
    os.write(second, b"new\n")
    wait_until(lambda: (tmp_path / "two.out").read_bytes() == b"old\nnew\n", 10, "both")
    time.sleep(0.01)
    os.write(first, b"late\n")
    wait_until(lambda: (tmp_path / "two.out").read_bytes().endswith(b"late\n"), 10, "late")
    os.close(first)
    os.close(second)
    settle(pump)
    index = records((tmp_path / "two.out.idx").read_bytes())
    assert [offset for offset, _ in index] == [0, 4, 8]
    assert index[1][1] >= before and index[0][1] < index[1][1] <= index[2][1] <= time.time()
    assert len((tmp_path / "two.out.idx").read_bytes()) == 3 * RECORD.size


def test_the_pump_exits_once_no_stream_and_no_daemon_are_left(tmp_path: Path) -> None:
    client = PumpClient(tmp_path / "goproc.sock")
    write = feed(client, tmp_path, "x.out", Limits(4096, 1))
    started = client._started
    assert started is not None
    client.close()  # the daemon goes away: the pump keeps reading
    os.write(write, b"still read\n")
    wait_until(lambda: (tmp_path / "x.out").read_bytes() == b"still read\n", 10, "the line")
    assert started.poll() is None
    os.close(write)
    assert started.wait(10) == 0


def test_the_bytes_go_by_splice_not_through_the_pump(tmp_path: Path) -> None:
    """A stream of 3 MiB through two rotations, traced: the pump moves it with `splice`
    (into the first file, which the daemon opens `O_APPEND`, and the rotated ones); only
    what it reads at a rotation to find a line's end goes through the pump."""
    client = PumpClient(tmp_path / "goproc.sock")
    try:
        write = feed(client, tmp_path, "s.out", Limits(1 << 20, 5))
        assert client._started is not None
        trace = Strace(client._started.pid, "splice,read,write,pwrite64", tmp_path / "st")
        try:
            data = b"".join(b"%07d %s\n" % (n, b"y" * 90) for n in range(30000))
            os.write(write, data)
            os.close(write)
            settle(client)
        finally:
            calls = trace.stop()
    finally:
        client.close()
    assert b"".join(f.read_bytes() for f in stream_files(tmp_path, "s.out")) == data
    assert len(stream_files(tmp_path, "s.out")) == 3
    moved = sum(int(m) for m in re.findall(r"splice\(.*\) = (\d+)", calls))
    copied = sum(int(m) for m in re.findall(r"pwrite64\(.*\) = (\d+)", calls))
    # Only at each of the two rotations is up to LINE_SLACK read, to cut at a line's end.
    assert copied <= 2 * LINE_SLACK and moved + copied == len(data), calls[-2000:]
