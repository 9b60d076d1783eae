"""The wire Structs against the shared IVOA schema: exact kind URIs, one Struct per kind."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import yaml

from broker import model
from broker.model.kinds import tags_of
from tests.conftest import shared_path

FAMILIES = {
    "executable": model.AnyExecutable,
    "compute": model.AnyCompute,
    "volume": model.AnyVolume,
    "storage": model.AnyStorage,
    "data": model.AnyData,
    "session": model.AnySession,
    "cost": model.AnyCost,
    "metric": model.AnyMetric,
    "option": model.AnyOption,
    "update": model.AnyUpdate,
}


def _mappings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict):
            yield from discriminator.get("mapping", {})
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def shared_kinds() -> set[str]:
    """Every discriminator value of the shared schema's mappings."""
    root = shared_path("spec", "openapi")
    return {
        kind
        for file in sorted(root.rglob("*.yaml"))
        for kind in _mappings(yaml.safe_load(file.read_text(encoding="utf-8")))
    }


@pytest.mark.shared
def test_every_kind_of_the_shared_schema_is_a_struct_of_ours_with_the_exact_uri():
    ours = {kind for family in FAMILIES.values() for kind in tags_of(family)}
    expected = shared_kinds()
    assert len(expected) >= 25  # 15 component kinds, 4 options, 4 updates, 2 abstract items
    assert expected <= ours, f"missing: {sorted(expected - ours)}"


@pytest.mark.shared
def test_ours_adds_only_the_documented_extension_kinds():
    ours = {kind for family in FAMILIES.values() for kind in tags_of(family)}
    assert ours - shared_kinds() == {
        model.ACCELERATED_COMPUTE_KIND,
        model.PYTHON_PROGRAM_KIND,
        model.JAVA_PROGRAM_KIND,
        model.S3_RESULTS_KIND,
        model.HTTP_RESULTS_KIND,
        model.FILE_RESULTS_KIND,
    }
    for kind in (model.ACCELERATED_COMPUTE_KIND, model.JAVA_PROGRAM_KIND, model.S3_RESULTS_KIND):
        assert kind.startswith(model.EXTENSION_KINDS)


def test_each_kind_names_its_family_for_messages():
    for family, union in FAMILIES.items():
        info = msgspec.inspect.type_info(union)
        members = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
        for member in members:
            assert family == member.cls.FAMILY, member.cls


def test_session_phases_are_the_thirteen_of_the_schema():
    assert [phase.value for phase in model.SessionPhase] == [
        "INITIAL",
        "OFFERED",
        "ACCEPTED",
        "REJECTED",
        "EXPIRED",
        "WAITING",
        "PREPARING",
        "AVAILABLE",
        "RUNNING",
        "RELEASING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert {
        model.SessionPhase.REJECTED,
        model.SessionPhase.EXPIRED,
        model.SessionPhase.COMPLETED,
        model.SessionPhase.FAILED,
        model.SessionPhase.CANCELLED,
    } == model.TERMINAL_PHASES


def test_structs_are_frozen_and_strict():
    cores = model.SimpleComputeCores(min=2)
    with pytest.raises(AttributeError):
        cores.min = 3  # type: ignore[misc]
    with pytest.raises(msgspec.ValidationError, match="unknown field `minimum`"):
        msgspec.convert({"minimum": 2}, model.SimpleComputeCores)
    with pytest.raises(msgspec.ValidationError, match=">= 1"):
        msgspec.convert({"min": 0}, model.SimpleComputeCores)


def test_the_accelerated_compute_resource_extends_the_simple_one():
    compute = model.AcceleratedComputeResource(
        cores=model.SimpleComputeCores(min=4),
        accelerators=model.Accelerators(count=model.AcceleratorCount(min=1), models=["A100"]),
    )
    assert isinstance(compute, model.SimpleComputeResource)
    assert compute.cores is not None
    assert compute.cores.min == 4


NOW = datetime(2026, 9, 1, 10, tzinfo=UTC)


def test_a_message_carries_its_template_values_and_rendered_text():
    message = model.message_item(
        "urn:resource-limit",
        "{platform} has {limit} cores; {needed} needed for {duration}",
        time=NOW,
        level=model.MessageLevel.ERROR,
        platform="beta",
        limit=16,
        needed=40,
        duration=timedelta(hours=2),
    )
    assert message.template == "{platform} has {limit} cores; {needed} needed for {duration}"
    assert message.values == {"platform": "beta", "limit": "16", "needed": "40", "duration": "PT2H"}
    assert message.message == "beta has 16 cores; 40 needed for PT2H"
    assert message.level is model.MessageLevel.ERROR
    assert message.time == NOW


def test_template_holes_without_values_stay_and_braces_cannot_reach_attributes():
    assert model.render_template("{a} and {b}", {"a": "x"}) == "x and {b}"
    assert model.render_template("{0.__class__} {a.b}", {"a": "x"}) == "{0.__class__} {a.b}"
    listed = model.message_item("k", "allowed: {allowed}", time=NOW, allowed=["A", "B"])
    assert listed.message == "allowed: A, B"
