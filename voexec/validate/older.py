"""The older forms a broker may still read.

The older path, the older discriminator, the Working Draft's update wrapper.

None is required by the newest schema, so a broker that refuses one (with a 4xx) gets a
warning, not a failure. A server error is a failure (bad input never gets a 5xx), and a broker
that reads an older form should answer in the newest form, as clients of the newest schema
read it.
"""

from __future__ import annotations

from typing import Any, Final

from voexec.validate.checks import (
    COMPUTE,
    DOCKER,
    JSON,
    Check,
    dig,
    execution_request,
    offers_of,
    phase_of,
    uuid_of,
)
from voexec.validate.exchange import Exchange

__all__ = ["check_older_forms"]

OLDER_TYPES: Final = "https://www.purl.org/ivoa.net/EB/schema/v1.0/types/"
"""Kind URIs of schema 1.0.4 (the reference implementation merged in the IVOA organisation)."""


def _older_request(check: Check) -> dict[str, Any]:
    request = execution_request(check.run)
    for part, name in (("executable", "executable/docker-container-1.0"),
                       ("compute", "compute/simple-compute-resource-1.0")):  # fmt: skip
        request[part].pop("kind")
        request[part]["type"] = OLDER_TYPES + name
    return request


def _judge(check: Check, at: int, exchange: Exchange, form: str) -> bool:
    """Whether the broker read `form`; a refusal is a warning, a 5xx a failure."""
    status = exchange.status
    if status is None or status >= 500:
        check.must(
            False, f"{form}: bad or older input MUST NOT get a server error", exchange.brief(), [at]
        )
        return False
    if status >= 400:
        check.warn(f"{form} is read (optional)", f"not read: {exchange.brief()}", [at])
        return False
    check.record("pass", "MAY", f"{form} is read", "", [at])
    return True


def check_older_forms(check: Check) -> None:
    """POST /offersets, `type:` with schema 1.0.4 URIs, and the `update:` wrapper."""
    at, exchange, document = check.call(
        "POST", "/offersets", document=execution_request(check.run), content_type=JSON, accept=JSON
    )
    if exchange.status in {404, 405}:
        check.warn(
            "The older path POST {base}/offersets is read (optional)", exchange.brief(), [at]
        )
    elif _judge(check, at, exchange, "The older path POST {base}/offersets") and document:
        check.cleanup(document if "result" in document else None)
    at, exchange, document = check.call(
        "POST", "/requests", document=_older_request(check), content_type=JSON, accept=JSON
    )
    if _judge(check, at, exchange, "`type:` with schema 1.0.4 kind URIs") and isinstance(
        document, dict
    ):
        offers = offers_of(document)
        for offer in offers[:1]:
            check.should(
                dig(offer, "executable", "kind") == DOCKER
                and dig(offer, "compute", "kind") == COMPUTE,
                "A request read in an older form SHOULD be answered in the newest form",
                f"executable kind {dig(offer, 'executable', 'kind')!r}, "
                f"compute kind {dig(offer, 'compute', 'kind')!r}",
                [at],
            )
        check.cleanup(document)
    _, offerset = check.request_offers(execution_request(check.run))
    offers = offers_of(offerset)
    offer_id = uuid_of(offers[0]) if offers else None
    try:
        if offer_id:
            wrapped = {
                "update": {"type": "uri:enum-value-update", "path": "phase", "value": "REJECTED"}
            }
            at, exchange, document = check.set_phase(offer_id, "REJECTED", body=wrapped)
            if _judge(check, at, exchange, "The Working Draft's `update:` wrapper"):
                check.should(
                    phase_of(document) == "REJECTED",
                    "An update read in an older form SHOULD do what it says",
                    f"phase {phase_of(document)!r}",
                    [at],
                )
    finally:
        check.cleanup(offerset)
