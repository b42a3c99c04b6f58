"""Long loops in worker threads that leave the event loop its turns at the GIL.

A worker thread that runs Python between short system calls drops the GIL around each
call and takes it straight back: a waiting event-loop thread is woken each time but
mostly finds it taken again, and waits on until the whole loop is over (the liveness
probes and the metrics reads of 1,000 processes are 10 to 30 ms of that).  `in_batches`
hands out the indices of the items a batch at a time and sleeps briefly between batches, long enough
for a waiting thread to be woken and take the GIL; that costs a few microseconds of CPU
a pause, and nothing when no one waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

BATCH = 25  # items between two pauses: about half a millisecond of /proc reads
PAUSE = 0.0001  # seconds: longer than waking a waiting thread takes


def in_batches(count: int, size: int = BATCH) -> Iterator[range]:
    """The indices 0 to `count`, `size` at a time, with a pause between two batches
    (in a worker thread)."""
    for at in range(0, count, size):
        if at:
            time.sleep(PAUSE)
        yield range(at, min(at + size, count))
