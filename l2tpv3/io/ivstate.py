"""Durable AEAD IV reservations: no IV is used twice under one key, across restarts.

AES-GCM and ChaCha20-Poly1305 lose both confidentiality and integrity when a nonce
repeats under a key (RFC 4106 §3.1 "MUST NOT repeat", RFC 7634 §2). With static keys
(``ip xfrm state`` manual keys, our ``add sa``) the key outlives the daemon, so an IV
counter that restarted at 1 after a restart or a crash would repeat nonces. The scheme:

- one state file per (algorithm, key), named by :func:`~l2tpv3.proto.esp.key_fingerprint`
  (a one-way hash: the file name tells nothing of the key), holding one decimal
  number H: every IV <= H may have been used;
- an SA may only use IVs from a block it was granted; a block (``BLOCK`` IVs) is
  granted only after H has been raised past its end, the file written to a temporary
  name, fsync'd, renamed over the old one and the directory fsync'd (rename is atomic:
  after a crash the file holds the old or the new H, never a torn one);
- at start the next block begins at H + 1, whatever happened before.

So an IV is used only after a file saying "IVs up to at least this one are spent" is
on stable storage, and no later process starts at or below it: no IV repeats, whatever
the crash. The cost of a crash is at most one unused block (2^20 of 2^64 IVs); the cost
in I/O is one fsync per 2^20 packets. SAs with the same key (two tunnels sharing one,
against advice) draw from the same counter, so they never share an IV either.

The directory (``l2tpv3d --state-dir``, default /var/lib/l2tpv3) is made 0700 and the
files 0600: they reveal no key, but nothing outside the daemon should write them
(rolling H back would make IVs repeat).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Final

from l2tpv3.errors import StateError

BLOCK: Final = 1 << 20
DEFAULT_STATE_DIR: Final = "/var/lib/l2tpv3"
_U64: Final = (1 << 64) - 1


class IvStore:
    """Grants blocks of IVs per key fingerprint, each on disk before it is used."""

    def __init__(self, directory: str | os.PathLike[str], block: int = BLOCK) -> None:
        self.directory = Path(directory)
        self.block = block
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, fingerprint: str) -> Path:
        return self.directory / f"esp-iv-{fingerprint}"

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"ESP state directory {self.directory}: {exc.strerror}") from None

    def high_water(self, fingerprint: str) -> int:
        """H from the file: the highest IV that may have been used (0: none)."""
        try:
            text = self._path(fingerprint).read_text()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StateError(f"ESP IV state {self._path(fingerprint)}: {exc.strerror}") from None
        try:
            value = int(text.strip())
        except ValueError:
            # Unreadable: never guess low. Refuse, so nobody reuses a nonce silently.
            raise StateError(
                f"ESP IV state {self._path(fingerprint)} is corrupt: remove it only "
                "together with the key (add a new SA with a fresh key)"
            ) from None
        return value

    def grant(self, fingerprint: str) -> tuple[int, int]:
        """The next block (first, last) of IVs for this key, durably reserved."""
        with self._lock:
            first = self._next.get(fingerprint)
            if first is None:
                self._ensure_dir()
                first = self.high_water(fingerprint) + 1
            last = min(first + self.block - 1, _U64)
            if first > last:
                raise StateError("ESP IV space of this key is used up: add an SA with a new key")
            self._write(fingerprint, last)
            self._next[fingerprint] = last + 1
            return first, last

    def _write(self, fingerprint: str, value: int) -> None:
        path = self._path(fingerprint)
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, f"{value}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StateError(f"ESP IV state {path}: {exc.strerror}") from None
