"""Rate-limit buckets shared by the worker processes of one `voexec serve` on one machine.

`create_table(path)` (run by `voexec serve --workers N` before the workers start) writes a
fixed-size file of buckets; each worker maps it with `SharedBuckets(path)` and hands it to its
`core.limits.RateLimiter`, so a client gets its limit once per machine, not once per worker.
Nothing is written to a database per request: a request reads and writes two 16-byte slots of
the mapped file under byte-range locks (`fcntl`).

The table, per kind of limit, is `SLOTS_PER_KIND` slots of (tokens, at) (two doubles); all zero
is an empty slot (a full bucket). A key's hash names two slots of its kind (count-min style):
a request passes only if both hold a token and is charged to both. A slot may be shared by
several keys; each key's every passed request is charged to each of its slots, so a slot never
lets a key past its limit, and sharing only ever refuses sooner. A key is refused early only
when both of its slots are shared with busy keys: with n keys active within `per`, roughly
(2n / SLOTS_PER_KIND) ** 2 of them. Memory is fixed (`table_bytes()`); a slot left alone for
`per` is full again, which is exactly an empty one, so stale buckets need no sweeping.

The clock is `time.monotonic`, which on Linux is the system's, the same in every process.
The locks are POSIX record locks: released by the kernel if a worker dies while holding one,
and per process, so each `SharedBuckets` also holds a thread lock for the threads of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from core.limits import KINDS, Bucket, Change

__all__ = ["ENV", "SLOTS_PER_KIND", "SharedBuckets", "create_table", "table_bytes"]

ENV: Final = "_VOEXEC_RATE_LIMIT_TABLE"
"""Where `voexec serve --workers N` tells its workers the path of the table."""
SLOTS_PER_KIND: Final = 1 << 17
"""Slots per kind of limit: 2 MiB per kind, 8 MiB in all."""
_MAGIC: Final = b"VOEXECRL"
_VERSION: Final = 1
_HEADER: Final = struct.Struct("<8sII")  # magic, version, slots per kind
_HEADER_BYTES: Final = 64
_SLOT: Final = struct.Struct("<dd")  # tokens, at


def table_bytes(slots_per_kind: int = SLOTS_PER_KIND) -> int:
    """The size of a table's file."""
    return _HEADER_BYTES + len(KINDS) * slots_per_kind * _SLOT.size


def create_table(path: Path, slots_per_kind: int = SLOTS_PER_KIND) -> Path:
    """Write an empty table at `path` (replacing any there, atomically); return `path`.

    A process still mapping a table it replaces keeps its own (the old file lives on until it
    is unmapped), so starting a server never changes the buckets of one already running.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        os.ftruncate(handle, table_bytes(slots_per_kind))  # sparse: zero pages are empty slots
        os.pwrite(handle, _HEADER.pack(_MAGIC, _VERSION, slots_per_kind), 0)
        os.close(handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(handle)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


class SharedBuckets:
    """A `core.limits.BucketStore` over the table at `path`, mapped into this process."""

    def __init__(self, path: Path) -> None:
        """Map the table `create_table` wrote at `path`.

        Raises:
            ValueError: `path` is not such a table.
        """
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(self._fd).st_size
            head = os.pread(self._fd, _HEADER.size, 0)
            if len(head) < _HEADER.size:
                raise ValueError(f"{path} is not a voexec rate-limit table")
            magic, version, slots = _HEADER.unpack(head)
            if magic != _MAGIC or version != _VERSION or size != table_bytes(slots) or slots < 2:
                raise ValueError(f"{path} is not a voexec rate-limit table (version 1)")
            self.slots_per_kind: int = slots
            self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED)
        except BaseException:
            os.close(self._fd)
            raise
        self._lock = threading.Lock()

    def close(self) -> None:
        """Unmap the table (its file stays for the other processes)."""
        self._map.close()
        os.close(self._fd)

    def slots(self, kind: str, key: str) -> tuple[int, ...]:
        """The byte offsets of the slots of (`kind`, `key`), ascending (the locking order)."""
        region = _HEADER_BYTES + KINDS.index(kind) * self.slots_per_kind * _SLOT.size
        digest = hashlib.blake2b(f"{kind}\0{key}".encode(), digest_size=16).digest()
        first = int.from_bytes(digest[:8], "little") % self.slots_per_kind
        second = int.from_bytes(digest[8:], "little") % self.slots_per_kind
        if second == first:
            second = (first + 1) % self.slots_per_kind
        return tuple(sorted((region + first * _SLOT.size, region + second * _SLOT.size)))

    def update(self, kind: str, key: str, now: float, idle: float, change: Change) -> float:
        """Apply `change` to the two slots of (`kind`, `key`), both locked (`BucketStore`)."""
        offsets = self.slots(kind, key)
        with self._lock:
            for offset in offsets:
                fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT.size, offset, os.SEEK_SET)
            try:
                found = [self._read(offset) for offset in offsets]
                kept, wait = change(found)
                for offset, bucket in zip(offsets, kept, strict=True):
                    _SLOT.pack_into(self._map, offset, bucket.tokens, bucket.at)
            finally:
                for offset in reversed(offsets):
                    fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT.size, offset, os.SEEK_SET)
        return wait

    def _read(self, offset: int) -> Bucket | None:
        tokens, at = _SLOT.unpack_from(self._map, offset)
        if tokens == 0.0 and at == 0.0:
            return None
        return Bucket(tokens, at)

    def buckets(self, kind: str, key: str) -> Sequence[Bucket | None]:
        """The buckets of (`kind`, `key`) as they are now (for tests and diagnostics)."""
        with self._lock:
            return [self._read(offset) for offset in self.slots(kind, key)]
