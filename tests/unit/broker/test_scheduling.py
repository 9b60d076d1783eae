"""Slot search on one platform: examples of what a user relies on, and the reasons for NO."""

from datetime import UTC, datetime, timedelta

import pytest

from broker.scheduling.intervals import Interval
from broker.scheduling.slots import (
    Booking,
    BookingKind,
    Demand,
    Gpu,
    GpuDemand,
    GpuShare,
    Limits,
    PlatformSpec,
    Prices,
    Resources,
    SlotPolicy,
    SlotSearch,
    assess,
    booking_range,
    earliest_start,
    explain_no_slots,
    find_slots,
    free_capacity,
    kind_name,
)
from core.errors import ConfigError, Invalid
from core.settings import settings_from_mapping

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
HORIZON = timedelta(days=7)
HOUR = timedelta(hours=1)


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def platform(name: str = "alpha", **overrides) -> PlatformSpec:
    fields = {
        "cores": 32,
        "memory": 128.0,
        "kinds": frozenset({"docker-container", "jupyter-notebook"}),
        "preparation": timedelta(minutes=5),
    }
    return PlatformSpec(name=name, **(fields | overrides))


def demand(**overrides) -> Demand:
    fields = {
        "kind": "docker-container",
        "duration": HOUR,
        "windows": (Interval(NOW, at(2)),),
        "cores_min": 4,
        "memory_min": 8.0,
    }
    return Demand(**(fields | overrides))


def booking(start: float, end: float, cores: int, memory: float = 0.0, name: str = "alpha"):
    return Booking(
        platform=name,
        interval=Interval(at(start), at(end)),
        resources=Resources(cores=cores, memory=memory),
    )


# ------------------------------------------------------------------------- when
def test_empty_platform_offers_the_earliest_start_after_preparation():
    slots = find_slots(platform(), [], demand(), NOW, HORIZON)
    assert slots[0].start == NOW + timedelta(minutes=5)
    assert slots[0].end == slots[0].start + HOUR


def test_earliest_start_is_exactly_when_capacity_frees_up():
    busy = [booking(0, 1.25, cores=30), booking(1.25, 1.5, cores=29)]
    slots = find_slots(platform(), busy, demand(), NOW, HORIZON)
    assert slots[0].start == at(1.5)  # not rounded to a step: the instant the cores free up


def test_a_start_window_that_closes_before_capacity_frees_gives_no_slot():
    busy = [booking(0, 3, cores=30)]
    assert find_slots(platform(), busy, demand(), NOW, HORIZON) == []
    (reason,) = explain_no_slots(platform(), busy, demand(), NOW, HORIZON)
    assert reason.text == "alpha: no free 4 cores before the end of the requested start range"
    assert reason.values["resources"] == "4 cores"


def test_every_requested_window_is_searched_and_respected():
    windows = (Interval(at(0), at(1)), Interval(at(5), at(6)))
    busy = [booking(0, 2, cores=32)]
    slots = find_slots(platform(), busy, demand(windows=windows), NOW, HORIZON)
    assert slots[0].start == at(5)
    assert all(at(5) <= s.start <= at(6) for s in slots)


def test_a_zero_length_window_means_start_exactly_then():
    exact = (Interval(at(3), at(3)),)
    (slot,) = find_slots(platform(), [], demand(windows=exact), NOW, HORIZON)
    assert slot.start == at(3)
    assert find_slots(platform(), [booking(3.5, 4, 32)], demand(windows=exact), NOW, HORIZON) == []


def test_window_before_the_preparation_is_done_explains_itself():
    early = (Interval(NOW - HOUR, NOW + timedelta(minutes=2)),)
    assert find_slots(platform(), [], demand(windows=early), NOW, HORIZON) == []
    (reason,) = explain_no_slots(platform(), [], demand(windows=early), NOW, HORIZON)
    assert reason.code == "start-too-early"
    assert reason.text == (
        "alpha: the requested start range ends before the earliest possible start "
        "(preparation takes PT5M)"
    )


def test_window_beyond_the_horizon_explains_itself():
    late = (Interval(at(24 * 8), at(24 * 9)),)
    (reason,) = explain_no_slots(platform(), [], demand(windows=late), NOW, HORIZON)
    assert reason.code == "start-beyond-horizon"
    assert "P7D from now" in reason.text


def test_a_horizon_shorter_than_the_preparation_explains_itself():
    (reason,) = explain_no_slots(platform(), [], demand(), NOW, timedelta(minutes=1))
    assert reason.text == ("alpha: preparation takes PT5M, longer than the booking horizon (PT1M)")


def test_long_sessions_and_long_horizons_work():
    """Durations of days and horizons of weeks: no two-hour window as in the reference."""
    long = demand(duration=timedelta(days=2, hours=3), windows=(Interval(NOW, at(24 * 20)),))
    busy = [booking(10, 24 * 5, cores=30), booking(24 * 6, 24 * 6 + 1, cores=30)]
    slots = find_slots(platform(), busy, long, NOW, timedelta(days=30))
    starts = [slot.start for slot in slots]
    # Fits neither before the first booking nor between the two: after the second one.
    assert starts[0] == at(24 * 6 + 1)
    assert slots[0].end - slots[0].start == timedelta(days=2, hours=3)


def test_maintenance_takes_the_whole_platform():
    closed = platform(maintenance=(Interval(at(0), at(3)),))
    slots = find_slots(closed, [], demand(windows=(Interval(NOW, at(5)),)), NOW, HORIZON)
    assert slots[0].start == at(3)


# ------------------------------------------------------------------------- how much
def test_offers_above_the_minimum_up_to_the_policy_and_never_above_the_maximum():
    slot = find_slots(platform(), [], demand(cores_min=4, memory_min=8), NOW, HORIZON)[0]
    assert (slot.offered.cores, slot.offered.memory) == (8, 16.0)  # 2 x minimum by default
    capped = demand(cores_min=4, cores_max=5, memory_min=8, memory_max=9.5)
    slot = find_slots(platform(), [], capped, NOW, HORIZON)[0]
    assert (slot.offered.cores, slot.offered.memory) == (5, 9.0)  # whole GiB, under the max
    exact = find_slots(platform(), [], demand(), NOW, HORIZON, policy=SlotPolicy(above_minimum=1))
    assert (exact[0].offered.cores, exact[0].offered.memory) == (4, 8.0)
    assert exact[0].minimum == Resources(cores=4, memory=8.0)


def test_offered_amount_is_what_is_free_for_the_whole_slot():
    busy = [booking(1, 1.5, cores=26)]  # 6 free for half an hour inside the first slot
    slot = find_slots(platform(), busy, demand(windows=(Interval(NOW, NOW),)), NOW, HORIZON)
    assert slot == []  # preparation makes the exact start impossible
    slots = find_slots(
        platform(), busy, demand(windows=(Interval(at(0.5), at(0.5)),)), NOW, HORIZON
    )
    assert slots[0].offered.cores == 6


def test_later_starts_are_kept_only_when_they_offer_more():
    busy = [booking(0, 1.5, cores=26)]  # 6 free at first, 32 after 1.5 h
    slots = find_slots(platform(), busy, demand(windows=(Interval(NOW, at(3)),)), NOW, HORIZON)
    assert [s.offered.cores for s in slots] == [6, 8]
    assert slots[1].start == at(1.5)


def test_latest_end_measures_the_room_after_the_slot():
    busy = [booking(1.5, 3, cores=30)]
    (slot, *_) = find_slots(platform(), busy, demand(), NOW, HORIZON)
    assert slot.latest_end == at(1.5)  # the minimum fits until the booking starts
    quiet = find_slots(platform(), [], demand(), NOW, HORIZON)[0]
    assert quiet.latest_end - quiet.start == 2 * HOUR  # stretch 2 x the duration


def test_per_request_limits_cap_the_offer_and_the_stretch():
    limited = platform(limits=Limits(cores=6, duration=timedelta(minutes=90)))
    slot = find_slots(limited, [], demand(), NOW, HORIZON)[0]
    assert slot.offered.cores == 6
    assert slot.latest_end - slot.start == timedelta(minutes=90)


def test_holds_count_like_bookings():
    hold = Booking(
        platform="alpha",
        interval=Interval(at(0), at(3.5)),
        resources=Resources(cores=30, memory=0),
        kind=BookingKind.HOLD,
    )
    assert find_slots(platform(), [hold], demand(), NOW, HORIZON) == []
    search = SlotSearch(platform(), [], demand(), NOW, HORIZON)
    assert search.slots()
    search.hold(hold)
    assert search.slots() == []


def test_bookings_of_other_platforms_are_ignored():
    elsewhere = [booking(0, 5, cores=32, name="beta")]
    assert find_slots(platform(), elsewhere, demand(), NOW, HORIZON)[0].start == at(0) + timedelta(
        minutes=5
    )


def test_booking_range_covers_every_possible_slot():
    window = booking_range(platform(), demand(), NOW, HORIZON)
    assert window == Interval(NOW + timedelta(minutes=5), at(2) + 2 * HOUR)
    unreachable = demand(windows=(Interval(NOW - HOUR, NOW),))
    assert booking_range(platform(), unreachable, NOW, HORIZON) is None


def test_free_capacity_shows_each_piece():
    pieces = free_capacity(platform(), [booking(1, 2, cores=10, memory=28)], Interval(at(0), at(3)))
    assert [(p.start, p.end) for p, _ in pieces] == [(at(0), at(1)), (at(1), at(2)), (at(2), at(3))]
    assert [free.cores for _, free in pieces] == [32, 22, 32]
    assert pieces[1][1].memory == 100.0


# ------------------------------------------------------------------------- GPUs
GPU_PLATFORM = platform(
    "gpu",
    gpus=(
        Gpu(model="A10", memory=24, count=4, compute_capability=8.6),
        Gpu(model="A100", memory=80, count=2, compute_capability=8.0),
    ),
)


def test_gpus_are_offered_per_acceptable_model():
    wants = demand(gpus=GpuDemand(count_min=2, memory_min=40))
    slots = find_slots(GPU_PLATFORM, [], wants, NOW, HORIZON)
    assert {s.offered.gpus for s in slots} == {(GpuShare("A100", 2),)}
    any_model = find_slots(GPU_PLATFORM, [], demand(gpus=GpuDemand(count_min=1)), NOW, HORIZON)
    assert {s.offered.gpus for s in any_model} == {(GpuShare("A10", 1),), (GpuShare("A100", 1),)}


def test_gpus_booked_by_others_are_not_offered():
    taken = Booking(
        platform="gpu",
        interval=Interval(at(0), at(3)),
        resources=Resources(cores=1, memory=1, gpus=(GpuShare("A100", 1),)),
    )
    wants = demand(gpus=GpuDemand(count_min=2, models=("a100",)))
    slots = find_slots(GPU_PLATFORM, [taken], wants, NOW, HORIZON)
    assert slots == []
    (reason,) = explain_no_slots(GPU_PLATFORM, [taken], wants, NOW, HORIZON)
    assert reason.text == "gpu: no free 2 A100 GPUs before the end of the requested start range"


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        (GpuDemand(count_min=2, memory_min=40), "alpha: needs 2 GPUs with >= 40 GiB, has no GPUs"),
        (
            GpuDemand(count_min=1, compute_capability_min=9),
            "gpu: needs 1 GPU with compute capability >= 9, "
            "has 4 x A10 24 GiB (compute capability 8.6), 2 x A100 80 GiB (compute capability 8)",
        ),
        (
            GpuDemand(count_min=3, memory_min=40),
            "gpu: needs 3 GPUs with >= 40 GiB, has 4 x A10 24 GiB, 2 x A100 80 GiB",
        ),
        (
            GpuDemand(vendor="amd"),
            "gpu: needs 1 GPU from amd, has 4 x A10 24 GiB (nvidia), 2 x A100 80 GiB (nvidia)",
        ),
    ],
)
def test_gpu_mismatches_name_what_is_needed_and_what_is_there(gpus, expected):
    target = platform() if "alpha" in expected else GPU_PLATFORM
    assert [r.text for r in assess(target, demand(gpus=gpus))] == [expected]


def test_the_example_reason_of_the_issue():
    alpha = platform(gpus=(Gpu(model="A10", memory=24, count=1),))
    (reason,) = assess(alpha, demand(gpus=GpuDemand(count_min=2, memory_min=40)))
    assert reason.text == "alpha: needs 2 GPUs with >= 40 GiB, has A10 24 GiB"
    assert reason.template == "{platform}: needs {needed}, has {available}"
    assert reason.values == {
        "platform": "alpha",
        "needed": "2 GPUs with >= 40 GiB",
        "available": "A10 24 GiB",
    }


# ------------------------------------------------------------------------- static reasons
def test_unknown_kind_is_named():
    kind = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/singularity-container.yaml"
    (reason,) = assess(platform("beta"), demand(kind=kind))
    assert reason.text == "beta: does not run singularity containers"
    assert reason.values["kind"] == kind


def test_limits_and_totals_explain_themselves():
    delta = platform("delta", cores=1024, limits=Limits(cores=128))
    assert [r.text for r in assess(delta, demand(cores_min=600))] == [
        "delta: asks 600 cores, the most one request may have here is 128"
    ]
    assert [r.text for r in assess(platform(), demand(memory_min=500))] == [
        "alpha: needs 500 GiB of memory, has 128 in all"
    ]
    short = platform(limits=Limits(duration=timedelta(days=1)))
    assert [r.text for r in assess(short, demand(duration=timedelta(hours=48)))] == [
        "alpha: asks for P2D, the longest one request may have here is P1D"
    ]


def test_several_problems_give_several_reasons():
    reasons = assess(platform(), demand(kind="singularity-container", cores_min=64, memory_min=512))
    assert [r.code for r in reasons] == ["unsupported-kind", "over-capacity", "over-capacity"]


def test_resources_short_only_together_are_named_together():
    both_short = [booking(0, 3, cores=28, memory=124)]
    (reason,) = explain_no_slots(platform(), both_short, demand(cores_min=8), NOW, HORIZON)
    assert reason.values["resources"] == "8 cores and 8 GiB of memory"
    memory_short = [booking(0, 1, cores=30), booking(1, 3, cores=0, memory=125)]
    (reason,) = explain_no_slots(platform(), memory_short, demand(), NOW, HORIZON)
    assert reason.values["resources"] == "8 GiB of memory"
    # Cores are free from 1.5 h, memory until 1.5 h: each fits alone, never both for an hour.
    staggered = [booking(0, 1.5, cores=30), booking(1.5, 3, cores=0, memory=125)]
    (reason,) = explain_no_slots(platform(), staggered, demand(), NOW, HORIZON)
    assert reason.values["resources"] == "4 cores and 8 GiB of memory at the same time"
    assert reason.values["short"] == "cores,memory"


def test_the_short_resource_is_named_for_advice():
    memory_short = [booking(0, 1, cores=30), booking(1, 3, cores=0, memory=125)]
    (reason,) = explain_no_slots(platform(), memory_short, demand(), NOW, HORIZON)
    assert reason.values["short"] == "memory"


def test_explain_is_empty_when_there_is_a_slot():
    assert explain_no_slots(platform(), [], demand(), NOW, HORIZON) == []


# ------------------------------------------------------------------------- types and settings
def test_demand_validation_names_each_field():
    with pytest.raises(Invalid) as caught:
        Demand(
            kind=" ",
            duration=timedelta(0),
            windows=(),
            cores_min=0,
            memory_min=4,
            memory_max=2,
            gpus=GpuDemand(count_min=2, count_max=1),
        )
    fields = {problem.field for problem in caught.value.problems}
    assert fields == {"kind", "duration", "windows", "cores.min", "memory.max", "gpus.count.max"}


@pytest.mark.parametrize(
    "kind",
    [
        "docker-container",
        "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/docker-container.yaml",
        "https://www.purl.org/ivoa.net/EB/schema/v1.0/types/executable/docker-container-1.0",
        "uri:docker-container-1.0",
        "Docker-Container",
    ],
)
def test_kind_names_accept_uris_and_aliases(kind):
    assert kind_name(kind) == "docker-container"


def test_platform_from_settings():
    settings = settings_from_mapping(
        {
            "broker": {
                "platforms": [
                    {
                        "name": "hpc",
                        "capacity": {
                            "cores": 256,
                            "memory": 1024,
                            "gpus": [{"model": "A100", "memory": 80, "count": 8}],
                        },
                        "executables": ["https://x/kinds/executable/docker-container.yaml"],
                        "limits": {"cores": 64, "duration": "P2D"},
                        "cost": {"core_hour": 0.02, "unit": "CHF"},
                        "maintenance": [{"interval": "2026-06-02T08:00:00Z/PT4H"}],
                        "preparation": "PT2M",
                    }
                ]
            }
        }
    )
    spec = PlatformSpec.from_settings(settings.broker.platforms[0])
    assert (spec.name, spec.cores, spec.memory) == ("hpc", 256, 1024)
    assert spec.gpus == (Gpu(model="A100", memory=80, count=8),)
    assert spec.kinds == frozenset({"docker-container"})
    assert spec.limits == Limits(cores=64, duration=timedelta(days=2))
    assert spec.prices == Prices(core_hour=0.02, unit="CHF")
    assert spec.maintenance == (
        Interval(datetime(2026, 6, 2, 8, tzinfo=UTC), datetime(2026, 6, 2, 12, tzinfo=UTC)),
    )
    assert spec.preparation == timedelta(minutes=2)


def test_bad_maintenance_interval_is_a_config_error_naming_the_setting():
    settings = settings_from_mapping(
        {
            "broker": {
                "platforms": [
                    {
                        "name": "hpc",
                        "capacity": {"cores": 1, "memory": 1},
                        "maintenance": [{"interval": "next tuesday"}],
                    }
                ]
            }
        }
    )
    with pytest.raises(ConfigError, match=r"broker\.platforms\[hpc\]\.maintenance\[0\]\.interval"):
        PlatformSpec.from_settings(settings.broker.platforms[0])


# ------------------------------------------------------------------------- moving a late session
def test_earliest_start_finds_room_for_the_whole_slot_or_none():
    spec = PlatformSpec(name="alpha", cores=8, memory=32.0, kinds=frozenset({"docker-container"}))
    wanted = Resources(cores=4, memory=8.0)
    hour = timedelta(hours=1)
    base = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    busy = [
        Booking(
            platform="alpha",
            interval=Interval(base + hour, base + 2 * hour),
            resources=Resources(cores=6, memory=8.0),
        )
    ]
    within = Interval(base, base + 3 * hour)
    assert earliest_start(spec, busy, wanted, hour, within) == base
    # From 09:30, the hour would meet the 6 cores at 10:00: the next room starts at 11:00.
    later = Interval(base + hour / 2, base + 3 * hour)
    assert earliest_start(spec, busy, wanted, hour, later) == base + 2 * hour
    assert earliest_start(spec, busy, wanted, hour, Interval(later.start, base + hour)) is None
    # The holds of one other offer set count by their maximum.
    held = [
        Booking(
            platform="alpha",
            interval=Interval(base, base + hour),
            resources=Resources(cores=4, memory=8.0),
            kind=BookingKind.HOLD,
            group="set",
        )
        for _ in range(2)
    ]
    assert earliest_start(spec, held, wanted, hour, Interval(base, base)) == base
