"""POSIX extended regular expressions, exactly as `pgrep` reads them: the C library's
own `regcomp(REG_EXTENDED | REG_NOSUB)` and `regexec`, through ctypes, so a pattern
means here what it means to pgrep (`[[:digit:]]`, `\\d` as a plain `d`, leftmost
longest...).  `-x` is pgrep's `^(PATTERN)$`.  Where there is no C library regex (not
Linux or another Unix), Python's `re` stands in, with the differences that brings.

A compiled pattern holds C memory: `close` frees it (an `Ere` is also a context
manager).  Matching is thread-safe (`regexec` of one compiled pattern may run in
several threads at once), so a scan in a worker thread may use one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from types import TracebackType

from goproc.errors import InvalidValue

REG_EXTENDED = 1
REG_NOSUB = 8
_REGEX_T_SIZE = 256  # sizeof(regex_t) is 64 on glibc x86-64: room to spare anywhere


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if lib is None or not all(hasattr(lib, f) for f in ("regcomp", "regexec", "regfree")):
        return None
    lib.regcomp.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.regexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.regexec.argtypes += [ctypes.c_void_p, ctypes.c_int]
    lib.regerror.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    return lib


_LIBC = _libc()


class Ere:
    """A compiled pattern; InvalidValue (naming `field`) when it is not one."""

    def __init__(self, pattern: str, *, exact: bool = False, field: str = "pattern") -> None:
        text = f"^({pattern})$" if exact else pattern
        if "\0" in pattern:
            raise InvalidValue(f"{field}: must not contain a NUL character")
        self._buf: ctypes.Array[ctypes.c_char] | None = None
        self._re: re.Pattern[bytes] | None = None
        if _LIBC is None:
            try:
                self._re = re.compile(text.encode("utf-8", "surrogateescape"))
            except re.error as e:
                raise InvalidValue(
                    f"{field}: not a regular expression ({e}): {pattern!r}"
                ) from None
            return
        buf = ctypes.create_string_buffer(_REGEX_T_SIZE)
        code = _LIBC.regcomp(buf, text.encode("utf-8", "surrogateescape"), REG_EXTENDED | REG_NOSUB)
        if code:
            message = ctypes.create_string_buffer(256)
            _LIBC.regerror(code, buf, message, len(message))
            raise InvalidValue(
                f"{field}: not an extended regular expression"
                f" ({message.value.decode(errors='replace')}): {pattern!r}"
            )
        self._buf = buf

    def search(self, text: bytes) -> bool:
        """Whether the pattern matches somewhere in `text` (up to a NUL, as C reads it)."""
        if self._re is not None:
            return self._re.search(text) is not None
        if self._buf is None or _LIBC is None:
            raise ValueError("the pattern is closed")
        return bool(_LIBC.regexec(self._buf, text, 0, None, 0) == 0)

    def close(self) -> None:
        if self._buf is not None and _LIBC is not None:
            _LIBC.regfree(self._buf)
        self._buf = None

    def __enter__(self) -> Ere:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
