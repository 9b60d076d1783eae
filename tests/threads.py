"""Running calls in threads that start together, for the tests that race database clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def race(calls: list[Callable[[], T]], *, timeout: float = 120) -> list[T | Exception]:
    """Run every call in its own thread, all released at once; results (or errors) in order.

    Fails the test when a call has not returned after `timeout` seconds (a hung caller, as a
    deadlock would make).
    """
    barrier = threading.Barrier(len(calls))
    results: list[T | Exception] = [RuntimeError("did not run")] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - collected and judged by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a caller hung"
    return results
