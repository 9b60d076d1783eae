"""The one retry loop every harvest source uses (`harvest.sources.port.with_retries`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harvest.sources.port import exponential, with_retries


class Busy(Exception):
    pass


class GaveUp(Exception):
    pass


def flaky(failures: list[Exception], answer: str = "ok") -> Callable[[], str]:
    """An operation that raises each of `failures` in turn, then answers."""
    remaining = list(failures)

    def operation() -> str:
        if remaining:
            raise remaining.pop(0)
        return answer

    return operation


def run(operation: Callable[[], str], sleeps: list[float], retries: int = 3, **options) -> str:
    options.setdefault("wait", lambda _error, attempt: exponential(attempt))
    return with_retries(
        operation,
        retries=retries,
        retry_on=(Busy,),
        give_up=lambda error, attempts: GaveUp(f"{error} after {attempts} attempts"),
        sleep=sleeps.append,
        **options,
    )


def test_passing_failures_are_waited_out_with_growing_pauses():
    sleeps: list[float] = []
    assert run(flaky([Busy("503"), Busy("503"), Busy("reset")]), sleeps) == "ok"
    assert sleeps == [1.0, 2.0, 4.0]


def test_after_the_last_retry_it_gives_up_without_a_last_pause():
    sleeps: list[float] = []
    with pytest.raises(GaveUp, match="503 after 3 attempts") as raised:
        run(flaky([Busy("503")] * 5), sleeps, retries=2)
    assert sleeps == [1.0, 2.0]
    assert isinstance(raised.value.__cause__, Busy)


def test_a_failure_judged_final_is_not_asked_again():
    sleeps: list[float] = []
    with pytest.raises(GaveUp, match="404 after 1 attempts"):
        run(flaky([Busy("404")]), sleeps, wait=lambda error, _attempt: None)
    assert sleeps == []


def test_other_exceptions_pass_through_untouched():
    sleeps: list[float] = []
    with pytest.raises(KeyError):
        run(flaky([KeyError("bug")]), sleeps)
    assert sleeps == []


def test_the_wait_can_follow_what_the_server_asks():
    sleeps: list[float] = []
    answer = run(
        flaky([Busy("429")]),
        sleeps,
        wait=lambda error, _attempt: 7.0 if "429" in str(error) else None,
    )
    assert answer == "ok"
    assert sleeps == [7.0]


def test_pauses_double_up_to_the_longest():
    assert [exponential(a, first=0.5, longest=3) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
