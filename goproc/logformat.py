"""How a started command's output lies on disk: the files of one stream, their order,
and the index that dates what came in.  Shared by the log pump (which writes them) and
`goproc logs` (which reads them).  Standard library only; pure.

- a stream's current file is its base name (`7.out`); a rotation renames it to
  `7.out.1`, the one before to `7.out.2`, and so on up to `log_keep` files (the oldest
  beyond that is gone).  Read oldest first: `7.out.K`, ..., `7.out.1`, `7.out`.
- a rotation happens at a line's end once the file holds `log_max_bytes` (a line longer
  than `LINE_SLACK` past the limit is cut there), so a line is in one file.
- beside each file, its index (`7.out.idx`, `7.out.1.idx`, renamed with it): records of
  `RECORD` = (offset in that file, UNIX time in seconds): the bytes from that offset on,
  up to the next record's offset, were received at that time (to `STEP` seconds).  A
  file without an index (written before indexes were kept) has no times.
"""

from __future__ import annotations

import struct

RECORD = struct.Struct("<Qd")  # offset (bytes), time (seconds since the epoch)
STEP = 0.001  # seconds: a burst within this of the last record shares its time
LINE_SLACK = 1 << 16  # bytes a file may grow past its limit waiting for a line's end
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 3
MIN_MAX_BYTES = 4096  # the smallest rotation size
SIZE_MAX = 1 << 50  # the largest
KEEP_MAX = 1000


def rotated(base: str, n: int) -> str:
    """The name of a stream's n-th file back (0: the current one)."""
    return base if n == 0 else f"{base}.{n}"


def index_of(name: str) -> str:
    """The name of a file's index."""
    return f"{name}.idx"


def records(data: bytes) -> list[tuple[int, float]]:
    """An index's records (a torn last record, from a write cut short, is left out)."""
    usable = len(data) - len(data) % RECORD.size
    return [RECORD.unpack_from(data, at) for at in range(0, usable, RECORD.size)]
