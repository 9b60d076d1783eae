"""A bounded, thread-safe least-recently-used cache for search answers.

The catalogue keeps the facet trees and the pages it answered, keyed by the search index's
`generation()` and the normalised query, so that repeated searches (the browse page everyone
opens, paging back, the same link shared) skip counting, tree building and reading the store.
A write or an index switch changes the generation, so an old answer is never served again; it
just ages out.

Pure: no I/O.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class LruCache(Generic[Value]):
    """At most `size` values by key; the least recently used one goes first (size 0: none)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Value | None:
        """The value kept under `key`, if any (it becomes the most recently used)."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, value: Value) -> None:
        """Keep `value` under `key`, forgetting the least recently used beyond the size."""
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
