"""`goproc.cli.tail`: the last lines of a file, and what it refuses to open."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from goproc.cli import tail

contents = st.lists(st.sampled_from([b"a", b"\n", b"xyz", b"\r", b"\n\n"]), max_size=40).map(
    b"".join
) | st.binary(max_size=300)


def reference(data: bytes, n: int) -> bytes:
    return b"".join(data.splitlines(keepends=True)[-n:]) if n > 0 else b""


@given(data=contents, n=st.integers(0, 50), block=st.sampled_from([1, 2, 7, 1 << 16]))
def test_last_lines_are_the_last_n_lines(data: bytes, n: int, block: int) -> None:
    # splitlines also splits at \r: compare over \n only
    data = data.replace(b"\r", b"-")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f"
        path.write_bytes(data)
        fd = tail.open_log(str(path))
        saved = tail._BLOCK
        tail._BLOCK = block
        try:
            got, offset = tail.last_lines(fd, n)
        finally:
            tail._BLOCK = saved
            os.close(fd)
    assert got == reference(data, n)
    assert offset == len(data)


def test_open_log_refuses_symlinks_fifos_and_missing_files(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x\n")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    for name, words in (("link", "symlink"), ("fifo", "not a regular file"), ("nope", "No such")):
        with pytest.raises(tail.TailError, match=words):
            tail.open_log(str(tmp_path / name))
