"""Journal generations are named in ASCII digits only: a file whose name ends in other
digits (`goproc.journal.` and U+0661, which `int` reads as 1) is no generation of ours."""

from __future__ import annotations

from pathlib import Path

from goproc.store.files import journal_generations


def test_only_ascii_digit_names_are_journal_generations(tmp_path: Path) -> None:
    for name in (
        "goproc.journal.1",
        "goproc.journal.12",
        "goproc.journal.\u0661",
        "goproc.journal.\u00b2",
        "goproc.journal.1\u0663",
        "goproc.journal.",
    ):
        (tmp_path / name).write_bytes(b"")
    assert journal_generations(tmp_path) == [1, 12]
