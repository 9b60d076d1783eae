"""The work-queue runner ticks every interval, at once when woken (after an accept), and stops."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from broker import model
from broker.model import codec
from broker.service.worker import WorkQueueRunner
from tests.broker_support import accept_first, local_broker


class _Ticks:
    def __init__(self) -> None:
        self.count = 0
        self.ticked = threading.Event()

    def tick(self) -> int:
        self.count += 1
        self.ticked.set()
        return 0


def test_a_wake_makes_the_runner_tick_long_before_its_interval():
    ticks = _Ticks()
    runner = WorkQueueRunner(ticks, timedelta(hours=1))
    runner.start()
    try:
        assert not ticks.ticked.wait(0.2)  # nothing before the interval, unless woken
        runner.wake()
        assert ticks.ticked.wait(30), "a wake did not make the runner tick"
        assert ticks.count == 1
    finally:
        runner.stop()


def test_the_runner_ticks_every_interval_and_stops_without_a_last_tick():
    ticks = _Ticks()
    runner = WorkQueueRunner(ticks, timedelta(milliseconds=10))
    runner.start()
    try:
        assert ticks.ticked.wait(30)
    finally:
        runner.stop()
    stopped_at = ticks.count
    assert not threading.Event().wait(0.05)
    assert ticks.count == stopped_at  # the thread is gone: no tick after stop


def test_an_accept_wakes_the_work_queue_and_a_reject_does_not(tmp_path):
    parts = local_broker(tmp_path, ["python-program"], store="memory")
    wakes: list[str] = []
    parts.service.on_work_due(lambda: wakes.append("woken"))
    now = datetime.now(UTC).replace(microsecond=0)
    request = codec.convert(
        {
            "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": "file:///bin/true"},
            "compute": {
                "kind": model.KINDS + "compute/simple-compute-resource.yaml",
                "cores": {"min": 1, "max": 1},
                "memory": {"min": 1, "max": 1},
            },
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT1H", "duration": "PT10M"}},
        },
        model.ExecutionRequest,
    ).value
    rejected = parts.service.request_offers(request, "http://broker.test")
    assert rejected.result == "YES", rejected
    uuid = rejected.offers[0].meta.uuid  # type: ignore[union-attr]
    reject = model.EnumValueUpdate(path="phase", value="REJECTED")
    parts.service.update_session(uuid, reject)
    assert wakes == []
    accept_first(parts.service, parts.service.request_offers(request, "http://broker.test"))
    assert wakes == ["woken"]
