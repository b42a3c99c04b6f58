"""`journal_fsync: "always"` when fdatasync really fails: the state dir is ext4 on a loop
device whose backing file lives on a small tmpfs, which is then filled, so the writes
the daemon makes land in the page cache and only their writeback fails (EIO/ENOSPC
from fdatasync).  Every change refused with -32005 must be gone after a restart, every
answered one kept; a refused `reset` above
all must not come back and wipe the registry: not after a restart on the same mount (the
records whose writeback failed are still in the page cache, readable), nor once the
page cache is gone (unmounted).  Root only (mount, losetup)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Daemon

from goproc.errors import STORAGE_ERROR as STORAGE

Sleeper = Callable[..., subprocess.Popen[bytes]]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext4"),
    reason="needs root, losetup and mkfs.ext4 to put the state dir on a loop device",
)


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"{' '.join(cmd)}: {done.stderr.strip()} (no loop devices here?)")
    return done.stdout.strip()


class LoopDisk:
    """ext4 on a loop device backed by a sparse file on a small tmpfs."""

    def __init__(self, root: Path, point: Path) -> None:
        self.back = root / "back"
        self.image = self.back / "disk.img"
        self.point = point
        self.device = ""

    def create(self) -> None:
        self.back.mkdir()
        run("mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(self.back))
        with open(self.image, "wb") as f:
            f.truncate(64 * 1024 * 1024)
        # No ext4 journal: a failed metadata write does not turn the file system
        # read-only, so the daemon can go on (and be restarted) on it, as on many disks.
        run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(self.image))
        self.attach()
        self.point.chmod(0o700)

    def attach(self) -> None:
        self.device = run("losetup", "-f", "--show", str(self.image))
        self.point.mkdir(mode=0o700, exist_ok=True)
        run("mount", "-o", "errors=continue", self.device, str(self.point))

    def detach(self) -> None:
        """Unmount: whatever only the page cache held is gone."""
        if self.device:
            run("umount", str(self.point))
            run("losetup", "-d", self.device)
            self.device = ""

    def fill_backing_store(self) -> None:
        with open(self.back / "fill", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass

    def free_backing_store(self) -> None:
        (self.back / "fill").unlink(missing_ok=True)

    def cleanup(self, daemons: list[Daemon]) -> None:
        for d in daemons:  # nothing may hold a file on the disk any more
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(10)
        if self.device:
            subprocess.run(["umount", "-l", str(self.point)], capture_output=True)
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
        subprocess.run(["umount", "-l", str(self.back)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[LoopDisk, list[Daemon]]]:
    """The disk, and a list for the daemons using it (killed before it is unmounted)."""
    d = LoopDisk(tmp_path, tmp_path / "d" / "state")
    (tmp_path / "d").mkdir()
    daemons: list[Daemon] = []
    try:
        yield d, daemons
    finally:
        d.cleanup(daemons)


def test_changes_refused_by_a_failed_fdatasync_never_come_back(
    spawn_daemon: Callable[..., Daemon],
    disk: tuple[LoopDisk, list[Daemon]],
    sleeper: Sleeper,
    tmp_path: Path,
) -> None:
    loop, users = disk
    loop.create()
    config = {"journal_fsync": "always", "snapshot_delay": "1h"}
    d = spawn_daemon(config=config, root=tmp_path / "d", start=False)
    users.append(d)
    d.start()
    kept = [d.call("add", {"pid": sleeper().pid, "tags": ["kept"]})["id"] for _ in range(2)]

    loop.fill_backing_store()
    refused = 0
    answered: list[int] = []
    # Records of ~20 KB: each needs blocks of the image never written before, which
    # the full tmpfs cannot give (a small record would land in a block it already has).
    tags = [f"late-{n:04d}-" + "x" * 54 for n in range(320)]  # 64 characters each, the most
    for _ in range(4):
        reply = d.request("add", {"pid": sleeper().pid, "tags": tags})
        if "error" in reply:
            assert reply["error"]["code"] == STORAGE, reply
            refused += 1
        else:
            answered.append(reply["result"]["id"])
    reset = d.request("reset", {"confirm": "RESET"})
    assert reset.get("error", {}).get("code") == STORAGE, reset
    assert refused >= 1, "the filled backing store must make fdatasync fail"
    assert [p["id"] for p in d.call("list")] == kept + answered, "refused: undone at once"
    d.stop()

    # A restart on the same mount reads what the page cache holds: a record whose
    # writeback failed would be read back (and replayed) but for the daemon's cut.
    loop.free_backing_store()
    d.start()
    assert [p["id"] for p in d.call("list")] == kept + answered, d.log()
    d.stop()
    # And after the page cache is gone: what is on the disk says the same.
    loop.detach()
    loop.attach()
    d.start()
    assert [p["id"] for p in d.call("list")] == kept + answered, d.log()
