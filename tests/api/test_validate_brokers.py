"""A broker for the validator's tests: a deliberately broken one.

`broken_broker()` is a small in-memory Execution Broker that follows the standard except in
five ways, each one a defect seen in a real implementation:

1. it answers JSON when the client names no type (the standard's default is YAML);
2. it answers a request for offers 200 with the offer set, never 303 with a Location;
3. it lets a REJECTED offer be ACCEPTED;
4. it answers 500 to a request for more cores than it has;
5. its offers never expire (`expires` is two seconds after creation, and means nothing).

The tests serve it with `tests.live_server.serving_in_thread`, so the validator speaks real
HTTP to it.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import yaml
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath, RawBody

KINDS: Final = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/"
KNOWN_EXECUTABLES: Final = {KINDS + "executable/docker-container.yaml"}
SESSION_KIND: Final = KINDS + "session/scheduled-execution-session.yaml"
CORES: Final = 64
EXPIRES_AFTER: Final = timedelta(seconds=2)
BROKEN: Final = (
    "yaml-default",
    "see-other",
    "illegal-transitions",
    "no-with-reasons",
    "offer-expiry",
)
"""The scenarios the broken broker must fail, one per defect."""


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(kind: str, text: str) -> dict[str, Any]:
    return {"kind": kind, "level": "ERROR", "time": _instant(datetime.now(UTC)),
            "template": text, "values": {}, "message": text}  # fmt: skip


def _answer(
    request: Request[Any, Any, Any], document: Any, status: int, **headers: str
) -> Response[bytes]:
    # Defect 1: JSON unless YAML is asked for by name.
    accept = request.headers.get("accept") or ""
    if "yaml" in accept and "json" not in accept:
        return Response(yaml.safe_dump(document).encode(), status_code=status,
                        media_type="application/yaml", headers=headers)  # fmt: skip
    return Response(json.dumps(document).encode(), status_code=status,
                    media_type="application/json", headers=headers)  # fmt: skip


def _error(request: Request[Any, Any, Any], status: int, path: str, reason: str) -> Response[bytes]:
    text = f"{path}: {reason}"
    return _answer(
        request, {"status": status, "meta": {"messages": [_message("urn:bad", text)]}}, status
    )


class _Store:
    def __init__(self) -> None:
        self.offersets: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()


def _decode(request: Request[Any, Any, Any], body: bytes) -> Any:
    if "json" in (request.headers.get("content-type") or ""):
        return json.loads(body)
    return yaml.safe_load(body)


def _parse_range(text: str) -> tuple[datetime, datetime]:
    start, _, end = text.partition("/")
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if end.startswith("PT") and end.endswith("H"):
        return begin, begin + timedelta(hours=float(end[2:-1]))
    if end.startswith("PT") and end.endswith("M"):
        return begin, begin + timedelta(minutes=float(end[2:-1]))
    return begin, datetime.fromisoformat(end.replace("Z", "+00:00"))


def broken_broker() -> Litestar:
    """The broken broker's app (see the module docstring for its five defects)."""
    store = _Store()

    def base(request: Request[Any, Any, Any]) -> str:
        return str(request.base_url).rstrip("/")

    def options_for(phase: str) -> list[dict[str, Any]]:
        allowed = {"OFFERED": ["ACCEPTED", "REJECTED"], "ACCEPTED": ["CANCELLED"]}.get(phase)
        return (
            [{"kind": "uri:enum-value-option", "path": "phase", "values": allowed}]
            if allowed
            else []
        )

    def session(  # noqa: PLR0917 - the offer's parts, named at each call
        request: Request[Any, Any, Any], request_doc: dict[str, Any], start: datetime,
                duration: str, cores: int, memory: int, phase: str) -> dict[str, Any]:  # fmt: skip
        ident = str(uuid.uuid4())
        now = datetime.now(UTC)
        document = {
            "kind": SESSION_KIND,
            "meta": {"uuid": ident, "url": f"{base(request)}/sessions/{ident}",
                     "created": _instant(now), "options": options_for(phase)},
            "phase": phase,
            "expires": _instant(now + EXPIRES_AFTER),  # Defect 5: never enforced.
            "executable": request_doc["executable"],
            "compute": {**request_doc["compute"], "cores": {"min": cores, "max": cores},
                        "memory": {"min": memory, "max": memory}},
            "schedule": {"available": {"start": f"{_instant(start)}/PT0S", "duration": duration}},
        }  # fmt: skip
        store.sessions[ident] = document
        return document

    def offers(  # noqa: PLR0911 - a whole broker's request handling, kept in one place
        request: Request[Any, Any, Any], body: bytes, *, direct: bool
    ) -> Response[bytes]:
        try:
            document = _decode(request, body)
        except ValueError:
            return _error(request, 400, "$", "not JSON")
        if not isinstance(document, dict) or "executable" not in document:
            return _error(request, 400, "$.executable", "required")
        if "kind" not in document["executable"]:
            return _error(request, 400, "$.executable.kind", "required")
        compute = document.get("compute") or {}
        cores, memory = compute.get("cores") or {}, compute.get("memory") or {}
        if not isinstance(cores.get("min", 1), int):
            return _error(request, 400, "$.compute.cores.min", "expected an integer")
        if cores.get("min", 1) > CORES and not direct:
            raise RuntimeError("the platform has fewer cores")  # Defect 4: a 500.
        ident = str(uuid.uuid4())
        offerset: dict[str, Any] = {
            "meta": {"uuid": ident, "url": f"{base(request)}/offersets/{ident}"}
        }
        schedule = (document.get("schedule") or {}).get("requested") or {}
        now = datetime.now(UTC) + timedelta(minutes=1)
        start, end = _parse_range(schedule["start"]) if "start" in schedule else (now, now)
        duration = schedule.get("duration", "PT10M")
        kind = document["executable"].get("kind")
        reasons = []
        if kind not in KNOWN_EXECUTABLES:
            reasons.append(_message("uri:unknown-type", f"Unknown executable kind {kind}"))
        if cores.get("min", 1) > CORES:
            reasons.append(_message("urn:resource-limit", f"at most {CORES} cores"))
        if duration.startswith("P") and not duration.startswith("PT"):
            reasons.append(_message("urn:resource-limit", f"{duration} is too long"))
        with store.lock:
            if direct:
                if reasons:
                    failed = {
                        "kind": SESSION_KIND,
                        "phase": "FAILED",
                        "meta": {"messages": reasons},
                    }
                    return _answer(request, failed, 400)
                made = session(request, document, start, duration, cores.get("min", 1),
                               memory.get("min", 1), "ACCEPTED")  # fmt: skip
                return _answer(request, made, 303, location=made["meta"]["url"])
            if reasons:
                offerset.update(result="NO")
                offerset["meta"]["messages"] = reasons
            else:
                starts = [start] + (
                    [start + timedelta(minutes=10)] if end >= start + timedelta(minutes=10) else []
                )
                low_cores, low_memory = cores.get("min", 1), memory.get("min", 1)
                alternatives = [
                    session(request, document, at, duration, low_cores, low_memory, "OFFERED")
                    for at in starts
                ]
                offerset.update(result="YES", offers=alternatives)
            store.offersets[ident] = offerset
        return _answer(request, offerset, 200)  # Defect 2: never 303.

    @post("/requests", status_code=200, sync_to_thread=False)
    def request_offers(request: Request[Any, Any, Any], body: RawBody) -> Response[bytes]:
        return offers(request, body, direct=False)

    @post("/direct", status_code=303, sync_to_thread=False)
    def direct(request: Request[Any, Any, Any], body: RawBody) -> Response[bytes]:
        return offers(request, body, direct=True)

    @get("/offersets/{ident:str}", sync_to_thread=False)
    def read_offerset(request: Request[Any, Any, Any], ident: FromPath[str]) -> Response[bytes]:
        found = store.offersets.get(ident)
        if found is None:
            return _error(request, 404, "uuid", f"no offer set {ident}")
        offers = [store.sessions[o["meta"]["uuid"]] for o in found.get("offers", [])]
        return _answer(request, {**found, **({"offers": offers} if offers else {})}, 200)

    @get("/sessions/{ident:str}", sync_to_thread=False)
    def read_session(request: Request[Any, Any, Any], ident: FromPath[str]) -> Response[bytes]:
        found = store.sessions.get(ident)
        if found is None:
            return _error(request, 404, "uuid", f"no session {ident}")
        return _answer(request, found, 200)

    @post("/sessions/{ident:str}", status_code=200, sync_to_thread=False)
    def change(
        request: Request[Any, Any, Any], ident: FromPath[str], body: RawBody
    ) -> Response[bytes]:
        found = store.sessions.get(ident)
        if found is None:
            return _error(request, 404, "uuid", f"no session {ident}")
        try:
            change = _decode(request, body)
        except ValueError:
            return _error(request, 400, "$", "not JSON")
        if not isinstance(change, dict) or change.get("kind") != "uri:enum-value-update":
            return _error(request, 400, "$.kind", "expected uri:enum-value-update")
        if str(change.get("path", "")).lstrip("/") != "phase":
            return _error(request, 400, "$.path", "only phase can be updated")
        allowed = {
            ("OFFERED", "ACCEPTED"), ("OFFERED", "REJECTED"), ("ACCEPTED", "CANCELLED"),
            ("REJECTED", "ACCEPTED"),  # Defect 3.
        }  # fmt: skip
        with store.lock:
            target = change.get("value")
            if (found["phase"], target) not in allowed:
                return _error(request, 409, "$.value", f"{found['phase']} cannot become {target}")
            found["phase"] = target
            found["meta"]["options"] = options_for(str(target))
            if target == "ACCEPTED":
                for offerset in store.offersets.values():
                    siblings = [o["meta"]["uuid"] for o in offerset.get("offers", [])]
                    if ident in siblings:
                        for sibling in siblings:
                            other = store.sessions[sibling]
                            if sibling != ident and other["phase"] == "OFFERED":
                                other["phase"] = "REJECTED"
                                other["meta"]["options"] = []
        return _answer(request, found, 200)

    return Litestar([request_offers, direct, read_offerset, read_session, change])
