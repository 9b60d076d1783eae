"""From a catalogue entry to an IVOA ExecutionRequest document (the hand-off to the broker).

The request carries the entry's `executable` block as published, a compute resource with the
entry's declared minimum cores and memory (GPUs through voexec's accelerated compute kind when
the entry needs them), the researcher's data mounted read-only under `/data/<name>`, where
the results go (voexec's results storage kinds), and the requested schedule. The researcher's
overrides win over the entry's declarations.

Pure: builds a plain mapping in the wire format (the catalogue never imports the broker); the
kind URIs below are the IVOA schema's, copied, as any client of the broker would.
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import urlsplit

from catalogue.model import ExecutableSpec, HandOff
from catalogue.timing import format_duration, parse_duration, parse_start
from core.errors import Invalid, Problem

KINDS: Final = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/"
SIMPLE_COMPUTE: Final = KINDS + "compute/simple-compute-resource.yaml"
ACCELERATED_COMPUTE: Final = (
    "https://voexec.org/broker/kinds/compute/accelerated-compute-resource.yaml"
)
SIMPLE_DATA: Final = KINDS + "data/simple-data-resource.yaml"
S3_DATA: Final = KINDS + "data/S3-data-resource.yaml"
IVOA_DATA: Final = KINDS + "data/ivoa-data-resource.yaml"
VOLUME: Final = KINDS + "volume/simple-volume-mount.yaml"
EXTENSIONS: Final = "https://voexec.org/broker/kinds/"
S3_RESULTS: Final = EXTENSIONS + "storage/s3-results-storage.yaml"
HTTP_RESULTS: Final = EXTENSIONS + "storage/http-results-storage.yaml"
FILE_RESULTS: Final = EXTENSIONS + "storage/file-results-storage.yaml"
MAX_DATA: Final = 50


def execution_request(spec: ExecutableSpec, overrides: HandOff, *, name: str) -> dict[str, Any]:
    """The ExecutionRequest for running `spec` with the researcher's `overrides`.

    Args:
        spec: the entry version's normalised document.
        overrides: what the researcher changes (schedule, resources, data).
        name: a name for the request's executable, shown in the broker's sessions.

    Raises:
        Invalid: an override cannot be read; each problem names the override's field.
    """
    problems: list[Problem] = []
    data = [_data_resource(location, i, problems) for i, location in enumerate(overrides.data)]
    if len(overrides.data) > MAX_DATA:
        problems.append(Problem("data", f"at most {MAX_DATA} locations"))
    schedule = _schedule(spec, overrides, problems)
    results = _results(overrides.results, problems) if overrides.results else None
    if problems:
        raise Invalid("cannot build the execution request", problems)
    executable = dict(spec.executable)
    executable.setdefault("meta", {"name": name})
    request: dict[str, Any] = {
        "executable": executable,
        "compute": _compute(spec, overrides, [d["meta"]["name"] for d in data if d]),
    }
    if data:
        request["data"] = [d for d in data if d]
    if results:
        request["storage"] = [results]
    if schedule:
        request["schedule"] = {"requested": schedule}
    return request


def _compute(spec: ExecutableSpec, overrides: HandOff, data_names: list[str]) -> dict[str, Any]:
    needs = spec.needs
    cores = overrides.cores if overrides.cores is not None else needs.cores
    # The broker counts memory in whole GiB; rounding up keeps the declared minimum a minimum.
    memory = math.ceil(overrides.memory if overrides.memory is not None else needs.memory)
    declared = needs.gpus if needs.gpus and not needs.gpus.optional else None
    gpus = overrides.gpus if overrides.gpus is not None else (declared.count if declared else 0)
    compute: dict[str, Any] = {
        "kind": SIMPLE_COMPUTE,
        "meta": {"name": "compute"},
        "cores": {"min": cores},
        "memory": {"min": max(memory, 1)},
    }
    if gpus > 0:
        accelerators: dict[str, Any] = {"count": {"min": gpus}}
        if needs.gpus is not None and needs.gpus.vendor:
            accelerators["vendor"] = needs.gpus.vendor
        if needs.gpus is not None and needs.gpus.memory:
            accelerators["memory"] = {"min": needs.gpus.memory}
        compute["kind"] = ACCELERATED_COMPUTE
        compute["accelerators"] = accelerators
    if data_names:
        compute["volumes"] = [
            {"kind": VOLUME, "path": f"/data/{name}", "mode": "READONLY", "resource": name}
            for name in data_names
        ]
    return compute


def _schedule(spec: ExecutableSpec, overrides: HandOff, problems: list[Problem]) -> dict[str, str]:
    schedule: dict[str, str] = {}
    if overrides.start:
        try:
            schedule["start"] = parse_start(overrides.start)
        except ValueError as error:
            problems.append(Problem("start", str(error)))
    duration = overrides.duration or spec.needs.duration
    if duration:
        try:
            schedule["duration"] = format_duration(parse_duration(duration))
        except ValueError as error:
            problems.append(Problem("duration", str(error)))
    return schedule


def _data_resource(location: str, index: int, problems: list[Problem]) -> dict[str, Any]:
    name = f"input-{index + 1}"
    meta = {"name": name, "description": location}
    parts = urlsplit(location.strip())
    scheme = parts.scheme.lower()
    if scheme in {"http", "https", "ftp"} and parts.netloc:
        return {"kind": SIMPLE_DATA, "meta": meta, "location": location.strip()}
    if scheme == "s3" and parts.netloc:
        resource: dict[str, Any] = {"kind": S3_DATA, "meta": meta, "bucket": parts.netloc}
        if parts.path.strip("/"):
            resource["object"] = parts.path.lstrip("/")
        return resource
    if scheme == "ivo" and parts.netloc:
        return {"kind": IVOA_DATA, "meta": meta, "ivoa": {"ivoid": location.strip()}}
    problems.append(
        Problem(
            f"data[{index}]",
            f"{location!r} is not a data location: use http(s)://, s3://bucket/key or ivo://",
        )
    )
    return {}


def _results(location: str, problems: list[Problem]) -> dict[str, Any]:
    """The results destination: an S3 prefix, an http(s) URL prefix, or a platform folder."""
    text = location.strip()
    meta = {"name": "results", "description": text}
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in {"s3+http", "s3+https"} and parts.netloc:
        bucket, _, prefix = parts.path.lstrip("/").partition("/")
        if bucket:
            endpoint = f"{scheme.removeprefix('s3+')}://{parts.netloc}"
            resource = {"kind": S3_RESULTS, "meta": meta, "endpoint": endpoint, "bucket": bucket}
            return resource | ({"prefix": prefix} if prefix else {})
    elif scheme in {"http", "https"} and parts.netloc:
        return {"kind": HTTP_RESULTS, "meta": meta, "location": text}
    elif (scheme == "file" and not parts.netloc) or (not scheme and text.startswith("/")):
        return {"kind": FILE_RESULTS, "meta": meta, "path": parts.path if scheme else text}
    problems.append(
        Problem(
            "results",
            f"{location!r} is not a results destination: use s3+https://endpoint/bucket/prefix, "
            "an http(s):// URL or an absolute folder path",
        )
    )
    return {}
