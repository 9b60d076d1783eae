"""The conformance scenarios that change nothing lasting: each asks for offers and rejects them.

Each scenario is a function of a `Check` plus a row of `SCENARIOS` (id, title, whether it
books); `voexec.validate.suite` runs them in that order. The requirement texts quote the
standard's words (the IVOA Execution Broker Working Draft and its newest OpenAPI schema); where
the draft is silent or ambiguous the reading chosen is in docs/validate.md.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Final

from voexec.validate.checks import (
    COMPUTE,
    DOCKER,
    ENUM_OPTION,
    JSON,
    SESSION_KINDS,
    YAML,
    Check,
    Unmet,
    dig,
    duration_of,
    execution_request,
    instant_of,
    is_document,
    messages_of,
    meta,
    names_field,
    offered_slot,
    offers_of,
    phase_of,
    random_uuid,
    slot_interval,
    uuid_of,
)
from voexec.validate.exchange import media_of

__all__ = [
    "check_json",
    "check_kinds",
    "check_min_max",
    "check_no_with_reasons",
    "check_offer_expiry",
    "check_offers_endpoint",
    "check_options",
    "check_read_back",
    "check_reject_and_illegal",
    "check_see_other",
    "check_start_range",
    "check_structured_errors",
    "check_unknown_kind",
    "check_yaml",
    "check_yaml_default",
]

UNKNOWN_KIND: Final = "https://example.org/voexec-validate/kinds/executable/no-such-kind.yaml"
EXPIRY_GRACE: Final = 3.0
"""Seconds past `expires` before an offer is expected to read EXPIRED (clocks, sweeps)."""


def _is_server_error(status: int | None) -> bool:
    return status is None or status >= 500


def check_offers_endpoint(check: Check) -> None:
    """POST /requests answers an offer set (the first thing any client does)."""
    at, exchange, document = check.call(
        "POST", "/requests", document=execution_request(check.run), content_type=JSON, accept=JSON
    )
    found = exchange.status is not None and exchange.status < 400
    hint = ""
    if exchange.status in {404, 405}:
        hint = " (is the URL the broker's base, which /requests and /sessions are under?)"
    elif exchange.status in {401, 403}:
        hint = " (give credentials: --token or --basic)"
    if not check.must(
        found,
        "The service MUST answer POST {base}/requests (the newest schema's ExecutionRequest)",
        f"{exchange.brief()}{hint}",
        [at],
    ):
        check.run.broker_missing = f"POST /requests failed: {exchange.brief()}{hint}"
        return
    if isinstance(document, dict) and "result" in document:
        check.must(True, "The answer is an OfferSetResponse with a result", at=[at])
        check.cleanup(document)
        return
    try:
        at, offerset = check.request_offers(execution_request(check.run))
    except Unmet as error:
        check.must(False, "The answer is an OfferSetResponse with a result", str(error), [at])
        return
    check.must(True, "The answer (or its Location) is an OfferSetResponse with a result", at=[at])
    check.cleanup(offerset)


def _negotiated(check: Check, media: str, label: str) -> None:
    body = execution_request(check.run)
    try:
        at, offerset = check.request_offers(body, media=media, accept=media)
    except Unmet as error:
        check.must(False, f"The service MUST accept {label} request bodies", str(error))
        return
    check.must(True, f"The service MUST accept {label} request bodies", at=[at])
    exchange = check.outcome.exchanges[at]
    answered = media_of(exchange.response_headers.get("content-type"))
    check.must(
        answered == media_of(media),
        f"The service MUST produce {label} when Accept asks for {media}",
        f"answered Content-Type {exchange.response_headers.get('content-type')!r}",
        [at],
    )
    check.cleanup(offerset)


def check_json(check: Check) -> None:
    """JSON in, JSON out."""
    _negotiated(check, JSON, "JSON")


def check_yaml(check: Check) -> None:
    """YAML in, YAML out."""
    _negotiated(check, YAML, "YAML")


def check_yaml_default(check: Check) -> None:
    """YAML when the client declares no type, or declares both equally."""
    at, offerset = check.request_offers(execution_request(check.run), media=YAML, accept=YAML)
    offerset_id = uuid_of(offerset)
    if not offerset_id:
        raise Unmet("the offer set has no meta.uuid to read it back by")
    at, exchange, _ = check.call("GET", f"/offersets/{offerset_id}")
    check.must(
        media_of(exchange.response_headers.get("content-type")) == "yaml",
        "With no Accept header the service MUST default to YAML",
        f"answered Content-Type {exchange.response_headers.get('content-type')!r}",
        [at],
    )
    at, exchange, _ = check.call("GET", f"/offersets/{offerset_id}", accept=f"{JSON}, {YAML}")
    check.must(
        media_of(exchange.response_headers.get("content-type")) == "yaml",
        "When Accept names JSON and YAML equally the service MUST default to YAML",
        f"answered Content-Type {exchange.response_headers.get('content-type')!r}",
        [at],
    )
    check.cleanup(offerset)


def check_see_other(check: Check) -> None:
    """303 See Other with a Location naming the offer set."""
    at, exchange, document = check.call(
        "POST", "/requests", document=execution_request(check.run), content_type=JSON, accept=JSON
    )
    location = exchange.response_headers.get("location")
    check.should(
        exchange.status == 303,
        "The service SHOULD answer a request for offers with 303 See Other "
        "(the schema's first answer; 200 with the offer set is its alternative)",
        exchange.brief(),
        [at],
    )
    if exchange.status == 303:
        check.must(
            bool(location),
            "A 303 answer MUST carry a Location header (required by the schema)",
            "no Location header",
            [at],
        )
    offerset = document if isinstance(document, dict) and "result" in document else None
    if location:
        offerset_id = uuid_of(offerset) if offerset else None
        if offerset_id:
            check.should(
                location.rstrip("/").endswith(f"/offersets/{offerset_id}"),
                "The Location SHOULD name the offer set (…/offersets/{uuid})",
                f"Location {location!r}, offer set {offerset_id}",
                [at],
            )
        try:
            read_at, read, read_doc = check.call(
                "GET", location if "://" in location else check.wire.url(location), accept=JSON
            )
        except Exception as error:  # noqa: BLE001 - a Location elsewhere is reported, not raised
            check.warn("The Location is read back", f"not followed: {error}", [at])
        else:
            check.must(
                read.status == 200 and is_document(read, read_doc) and "result" in read_doc,
                "GET on the Location MUST answer the offer set",
                read.brief(),
                [read_at],
            )
            offerset = offerset or read_doc
    if offerset:
        check.cleanup(offerset)


def check_read_back(check: Check) -> None:
    """GET /offersets/{uuid} and GET /sessions/{uuid} answer what the POST answered."""
    at, offerset, offers = check.yes_offers(execution_request(check.run))
    offerset_id = uuid_of(offerset)
    try:
        if not check.must(bool(offerset_id), "An offer set MUST carry meta.uuid", "", [at]):
            return
        read_at, read, read_doc = check.call("GET", f"/offersets/{offerset_id}", accept=JSON)
        check.must(
            read.status == 200 and uuid_of(read_doc) == offerset_id,
            "GET {base}/offersets/{uuid} MUST answer the same offer set",
            read.brief(),
            [read_at],
        )
        posted = [uuid_of(o) for o in offers]
        again = [uuid_of(o) for o in offers_of(read_doc)]
        check.must(
            sorted(map(str, posted)) == sorted(map(str, again)),
            "The offer set read back MUST list the same offers",
            f"posted {posted}, read back {again}",
            [at, read_at],
        )
        if sorted(map(str, posted)) == sorted(map(str, again)) and posted != again:
            check.warn(
                "Offers read back in the order they were offered (the broker's ranking)",
                f"posted {posted}, read back {again}",
                [at, read_at],
            )
        for offer in offers:
            offer_id = uuid_of(offer)
            if not check.must(bool(offer_id), "Each offer MUST carry meta.uuid", "", [at]):
                continue
            s_at, s, s_doc = check.session(str(offer_id))
            check.must(
                s.status == 200 and uuid_of(s_doc) == offer_id and phase_of(s_doc) == "OFFERED",
                "GET {base}/sessions/{uuid} MUST answer the offer, in phase OFFERED",
                f"{s.brief()}, phase {phase_of(s_doc)!r}",
                [s_at],
            )
    finally:
        check.cleanup(offerset)


def check_kinds(check: Check) -> None:
    """Answers use the newest schema's kind URIs."""
    at, offerset, offers = check.yes_offers(execution_request(check.run))
    try:
        for offer in offers:
            check.must(
                offer.get("kind") in SESSION_KINDS,
                "An offer MUST be a session of a kind the schema defines",
                f"kind {offer.get('kind')!r}",
                [at],
            )
            check.must(
                dig(offer, "executable", "kind") == DOCKER,
                "The offer's executable MUST carry the schema's kind URI",
                f"kind {dig(offer, 'executable', 'kind')!r}",
                [at],
            )
            check.must(
                dig(offer, "compute", "kind") == COMPUTE,
                "The offer's compute resource MUST carry the schema's kind URI "
                "(…/kinds/compute/simple-compute-resource.yaml)",
                f"kind {dig(offer, 'compute', 'kind')!r}",
                [at],
            )
    finally:
        check.cleanup(offerset)


def check_start_range(check: Check) -> None:
    """Every offer starts inside the requested start range and lasts the requested time."""
    requested = check.run.start_range(days=1, hours=1)
    at, offerset, offers = check.yes_offers(
        execution_request(check.run, start=requested, duration="PT20M")
    )
    start, end = (instant_of(part) for part in requested.split("/"))
    try:
        for offer in offers:
            slot, duration = offered_slot(offer)
            interval = slot_interval(slot)
            if interval is None:
                check.warn(
                    "Each offer shows its slot (schedule.available.start)",
                    f"offer {uuid_of(offer)} has no readable start ({slot!r})",
                    [at],
                    level="SHOULD",
                )
                continue
            check.must(
                interval.start == interval.end,
                "Each offer MUST have one concrete time slot",
                f"available.start {slot!r} is a range",
                [at],
            )
            check.must(
                start is not None and end is not None and start <= interval.start <= end,
                "An offer's start MUST lie within the requested start range",
                f"offered {slot!r}, requested {requested}",
                [at],
            )
            length = duration_of(duration)
            if length is not None:
                check.must(
                    length >= timedelta(minutes=20),
                    "An offer MUST meet the requested duration",
                    f"offered {duration!r}, requested PT20M",
                    [at],
                )
    finally:
        check.cleanup(offerset)


def check_min_max(check: Check) -> None:
    """Offers meet the requested minima and do not exceed the maxima."""
    at, offerset, offers = check.yes_offers(
        execution_request(check.run, cores=(2, 3), memory=(2, 3))
    )
    try:
        for offer in offers:
            for what in ("cores", "memory"):
                low, high = dig(offer, "compute", what, "min"), dig(offer, "compute", what, "max")
                observed = f"offer {uuid_of(offer)}: {what} {{min: {low}, max: {high}}}"
                if not isinstance(low, int | float) or not isinstance(high, int | float):
                    check.warn(f"Each offer shows the {what} offered", observed, [at], "SHOULD")
                    continue
                check.must(
                    low >= 2, f"An offer MUST meet the requested minimum {what} (2)", observed, [at]
                )
                check.should(
                    high <= 3,
                    f"An offer SHOULD NOT exceed the requested maximum {what} (3)",
                    observed,
                    [at],
                )
    finally:
        check.cleanup(offerset)


def _phase_option(document: object) -> list[str] | None:
    for option in meta(document).get("options") or []:
        if (
            isinstance(option, dict)
            and option.get("kind") == ENUM_OPTION
            and str(option.get("path", "")).lstrip("/") == "phase"
        ):
            return [str(v) for v in option.get("values") or []]
    return None


def check_options(check: Check) -> None:
    """Offers say what the client may change (meta.options)."""
    at, offerset, offers = check.yes_offers(execution_request(check.run))
    try:
        values = _phase_option(offers[0])
        check.should(
            values is not None and {"ACCEPTED", "REJECTED"} <= set(values),
            "An offer SHOULD list its allowed updates in meta.options "
            "(an enum-value-option on phase with ACCEPTED and REJECTED)",
            f"options {meta(offers[0]).get('options')!r}",
            [at],
        )
        offer_id = uuid_of(offers[0])
        if offer_id:
            r_at, _, rejected = check.set_phase(offer_id, "REJECTED")
            after = _phase_option(rejected)
            check.should(
                not after or "ACCEPTED" not in after,
                "A REJECTED session SHOULD NOT offer ACCEPTED among its options",
                f"options {meta(rejected).get('options')!r}",
                [r_at],
            )
    finally:
        check.cleanup(offerset)


def check_reject_and_illegal(check: Check) -> None:
    """Reject an offer; then accepting it, or updates the schema does not define, are refused."""
    _, offerset, offers = check.yes_offers(execution_request(check.run))
    offer_id = uuid_of(offers[0])
    accepted = False
    try:
        if not offer_id:
            raise Unmet("the offer has no meta.uuid")
        r_at, rejected, r_doc = check.set_phase(offer_id, "REJECTED")
        check.must(
            rejected.status == 200 and phase_of(r_doc) == "REJECTED",
            "An update setting phase REJECTED on an OFFERED session MUST reject it",
            f"{rejected.brief()}, phase {phase_of(r_doc)!r}",
            [r_at],
        )
        a_at, again, a_doc = check.set_phase(offer_id, "ACCEPTED")
        g_at, _, g_doc = check.session(offer_id)
        accepted = "ACCEPTED" in {phase_of(a_doc), phase_of(g_doc)} or phase_of(g_doc) in {
            "WAITING", "PREPARING", "AVAILABLE", "RUNNING",
        }  # fmt: skip
        check.must(
            not accepted and not _is_server_error(again.status),
            "A REJECTED session MUST NOT become ACCEPTED (REJECTED is final)",
            f"{again.brief()}; read back in phase {phase_of(g_doc)!r}",
            [a_at, g_at],
        )
        check.should(
            again.status is not None and 400 <= again.status < 500,
            "An update the phase does not allow SHOULD be refused with a 4xx status",
            again.brief(),
            [a_at],
        )
        u_at, odd, _ = check.call(
            "POST", f"/sessions/{offer_id}",
            document={"kind": "uri:enum-value-update", "path": "colour", "value": "BLUE"},
            content_type=JSON, accept=JSON,
        )  # fmt: skip
        check.must(
            not _is_server_error(odd.status),
            "An unknown update path MUST NOT be a 5xx",
            odd.brief(),
            [u_at],
        )
        check.should(
            odd.status is not None and 400 <= odd.status < 500,
            "An update of a path the session does not have SHOULD be refused with a 4xx status",
            odd.brief(),
            [u_at],
        )
    finally:
        check.cleanup(offerset, cancel=[offer_id] if accepted and offer_id else [])


def check_no_with_reasons(check: Check) -> None:
    """A request the broker cannot serve is answered NO, with reasons."""
    for label, request in (
        ("a million cores", execution_request(check.run, cores=(1_000_000, 1_000_000))),
        ("a 400-day duration", execution_request(check.run, duration="P400D")),
    ):
        at, exchange, document = check.call(
            "POST", "/requests", document=request, content_type=JSON, accept=JSON
        )
        if not check.must(
            not _is_server_error(exchange.status),
            f"A request for {label} MUST NOT be answered with a server error",
            exchange.brief(),
            [at],
        ):
            continue
        offerset = document if isinstance(document, dict) and "result" in document else None
        if offerset is None:
            try:
                at, offerset = check.request_offers(request)
            except Unmet:
                check.warn(
                    f"A request for {label} is answered NO (an offer set)",
                    f"refused instead: {exchange.brief()}",
                    [at],
                    level="SHOULD",
                )
                continue
        try:
            check.must(
                offerset.get("result") == "NO",
                f"A request for {label} that the service cannot serve MUST be answered NO",
                f"result {offerset.get('result')!r}",
                [at],
            )
            messages = messages_of(offerset)
            check.should(
                bool(messages),
                f"A NO SHOULD say why (meta.messages) — here, {label}",
                "no messages",
                [at],
            )
            if messages and not all(m.get("message") for m in messages):
                check.warn(
                    "Each message carries its rendered text (message), not only the template",
                    f"{sum(not m.get('message') for m in messages)} of {len(messages)} have none",
                    [at],
                    level="SHOULD",
                )
        finally:
            check.cleanup(offerset)


def check_unknown_kind(check: Check) -> None:
    """A kind the broker does not know is answered NO, naming it."""
    request = execution_request(check.run, executable_kind=UNKNOWN_KIND)
    at, exchange, document = check.call(
        "POST", "/requests", document=request, content_type=JSON, accept=JSON
    )
    if not check.must(
        not _is_server_error(exchange.status),
        "A request with an unknown kind MUST NOT be answered with a server error",
        exchange.brief(),
        [at],
    ):
        return
    offerset = document if isinstance(document, dict) and "result" in document else None
    if offerset is None and exchange.status is not None and exchange.status < 400:
        try:
            at, offerset = check.request_offers(request)
        except Unmet:
            offerset = None
    if offerset is None:
        check.warn(
            "An unknown kind SHOULD simply produce NO (the Working Draft); refused instead",
            exchange.brief(),
            [at],
            level="SHOULD",
        )
        check.should(
            names_field(exchange, UNKNOWN_KIND, "kind"),
            "A refusal SHOULD name the unknown kind or its field",
            exchange.body[:200],
            [at],
        )
        return
    try:
        check.should(
            offerset.get("result") == "NO",
            "An unknown kind SHOULD simply produce NO",
            f"result {offerset.get('result')!r}",
            [at],
        )
        check.should(
            names_field(check.outcome.exchanges[at], UNKNOWN_KIND),
            "The NO SHOULD name the kind it does not know",
            f"messages {[m.get('message') or m.get('template') for m in messages_of(offerset)]}",
            [at],
        )
    finally:
        check.cleanup(offerset)


def check_structured_errors(check: Check) -> None:
    """Bad input gets a 4xx with a body naming the field; unknown identifiers get 404."""
    request = execution_request(check.run)
    request["compute"]["cores"]["min"] = "many"
    at, exchange, document = check.call(
        "POST", "/requests", document=request, content_type=JSON, accept=JSON
    )
    bad_type_ok = check.must(
        exchange.status is not None and 400 <= exchange.status < 500,
        "A field of the wrong type MUST be refused with a 4xx status (never 2xx or 5xx)",
        exchange.brief(),
        [at],
    )
    if isinstance(document, dict) and "result" in document:
        check.cleanup(document)
    if bad_type_ok:
        check.should(
            is_document(exchange, document),
            "An error SHOULD be a document in the negotiated media type",
            exchange.body[:200],
            [at],
        )
        check.should(
            names_field(exchange, "cores"),
            "An error SHOULD name the field that is wrong (compute.cores.min)",
            exchange.body[:200],
            [at],
        )
    at, broken, _ = check.call(
        "POST", "/requests", text='{"executable": {', content_type=JSON, accept=JSON
    )
    check.must(
        broken.status is not None and 400 <= broken.status < 500,
        "A body that is not JSON MUST be refused with a 4xx status",
        broken.brief(),
        [at],
    )
    for what in ("sessions", "offersets"):
        at, missing, missing_doc = check.call("GET", f"/{what}/{random_uuid()}", accept=JSON)
        check.must(
            missing.status == 404,
            f"GET {{base}}/{what}/{{uuid}} of an unknown uuid MUST be 404",
            missing.brief(),
            [at],
        )
        if missing.status == 404:
            check.should(
                is_document(missing, missing_doc),
                "A 404 SHOULD carry a document saying what was not found",
                missing.body[:200] or "empty body",
                [at],
            )


def check_offer_expiry(check: Check) -> None:
    """An offer left alone expires at `expires`: EXPIRED, and no longer acceptable."""
    at, offerset, offers = check.yes_offers(execution_request(check.run))
    offer = offers[0]
    offer_id = uuid_of(offer)
    accepted = False
    try:
        expires, created = instant_of(offer.get("expires")), instant_of(meta(offer).get("created"))
        if (
            not check.should(
                expires is not None,
                "An offer SHOULD say when it expires (expires)",
                f"expires {offer.get('expires')!r}",
                [at],
            )
            or not offer_id
        ):
            return
        assert expires is not None  # checked just above, for the type checker
        # Wait by the broker's own clock: its expiry minus its creation time, from now.
        lifetime = (
            (expires - created).total_seconds()
            if created
            else (expires - check.run.now()).total_seconds()
        )
        if lifetime > check.run.options.expiry_wait:
            check.skip(
                "An offer MUST NOT be accepted after it expires",
                f"the offer expires in {lifetime:.0f} s, longer than the expiry wait "
                f"({check.run.options.expiry_wait:.0f} s; --expiry-wait)",
            )
            return
        time.sleep(max(0.0, lifetime) + EXPIRY_GRACE)  # waiting for the broker's own deadline
        g_at, _, g_doc = check.session(offer_id)
        check.should(
            phase_of(g_doc) == "EXPIRED",
            "An offer left alone past expires SHOULD read EXPIRED",
            f"phase {phase_of(g_doc)!r}",
            [g_at],
        )
        a_at, answer, a_doc = check.set_phase(offer_id, "ACCEPTED")
        r_at, _, r_doc = check.session(offer_id)
        accepted = phase_of(r_doc) in {"ACCEPTED", "WAITING", "PREPARING", "AVAILABLE", "RUNNING"}
        check.must(
            not accepted and phase_of(a_doc) != "ACCEPTED",
            "An offer MUST NOT be accepted after it expires",
            f"{answer.brief()}; read back in phase {phase_of(r_doc)!r}",
            [a_at, r_at],
        )
    finally:
        check.cleanup(offerset, cancel=[offer_id] if accepted and offer_id else [])
