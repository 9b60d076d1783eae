"""The catalogue's "runnable on" facet asks the broker (`voexec.wire_catalogue.InProcessBroker`).

The broker's judgement (kind, per-request limits, totals, GPUs), for local and remote
platforms alike, kept for `catalogue.runnable_on_cache` per kind and needs.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from catalogue.ports import Needs
from core.settings import PlatformSettings
from tests.clocks import MonotonicClock
from voexec.wire_catalogue import InProcessBroker

PLATFORMS = [
    msgspec.convert(p, PlatformSettings)
    for p in (
        {
            "name": "small",
            "capacity": {"cores": 4, "memory": 8},
            "executables": ["python-program"],
        },
        {
            "name": "gpu",
            "capacity": {
                "cores": 64,
                "memory": 256,
                "gpus": [{"model": "A100", "count": 4, "memory": 40}],
            },
            "limits": {"cores": 32, "duration": "PT4H"},
            "executables": ["python-program", "docker-container"],
        },
        {
            "name": "far",
            "adapter": "remote",
            "remote": {"url": "https://far.example/broker"},
            "capacity": {"cores": 16, "memory": 64},
            "executables": ["docker-container"],
        },
    )
]


def test_the_broker_says_which_platforms_fit_local_and_remote():
    gateway = InProcessBroker(None, PLATFORMS)
    assert gateway.runnable_on("python-program", Needs()) == ["small", "gpu"]
    assert gateway.runnable_on("docker-container", Needs(cores=8)) == ["gpu", "far"]
    assert gateway.runnable_on("docker-container", Needs(cores=40)) == []  # over gpu's limit
    assert gateway.runnable_on("python-program", Needs(gpus=1, gpu_memory=32)) == ["gpu"]
    assert gateway.runnable_on("python-program", Needs(gpus=1, gpu_memory=80)) == []
    assert gateway.runnable_on("python-program", Needs(duration="PT8H")) == ["small"]
    assert gateway.runnable_on("jupyter-notebook", Needs()) == []


def test_answers_are_kept_for_the_cache_lifetime_then_asked_again():
    clock = MonotonicClock(0.0)
    gateway = InProcessBroker(None, PLATFORMS, cache_for=timedelta(seconds=30), monotonic=clock)
    asked: list[str] = []
    ask = gateway._ask_runnable

    def counting(kind: str, needs: Needs) -> tuple[str, ...]:
        asked.append(kind)
        return ask(kind, needs)

    gateway._ask_runnable = counting  # type: ignore[method-assign]
    for _ in range(3):
        assert gateway.runnable_on("python-program", Needs()) == ["small", "gpu"]
    assert len(asked) == 1
    gateway.platforms = tuple(p for p in PLATFORMS if p.name != "small")
    clock.now = 29.0
    assert gateway.runnable_on("python-program", Needs()) == ["small", "gpu"]
    clock.now = 31.0
    assert gateway.runnable_on("python-program", Needs()) == ["gpu"]
    assert len(asked) == 2


def test_a_block_the_codec_just_rewrote_is_not_decoded_again(monkeypatch) -> None:
    from broker import model
    from broker.model.kinds import KINDS

    gateway = InProcessBroker(None, [])
    kind = KINDS + "executable/docker-container.yaml"
    newest = gateway.normalise_executable({"kind": kind, "image": "example/tool:1.0"})
    assert newest["kind"] == kind
    decoded = []
    convert = model.codec.convert
    monkeypatch.setattr(
        model.codec, "convert", lambda *a, **k: decoded.append(a) or convert(*a, **k)
    )
    assert gateway.validate_executable(newest) == []
    assert decoded == []  # the publisher's check of what it got back costs no decoding
    changed = {**newest, "image": 42}
    problems = gateway.validate_executable(changed)  # another block is decoded and judged
    assert len(decoded) == 1
    assert problems
    assert gateway.validate_executable(dict(newest)) == []  # an equal copy is decoded too
    assert len(decoded) == 2
