"""Every operation of the OpenAPI document, fuzzed by schemathesis: no server error, and every
answer as the document describes it.

Schemathesis reads the app's own `/schema/openapi.json` and sends requests generated from it
(valid ones, and ones that break the document's constraints) to the app in process, with an
operator's bearer token, so every write route is reached past its authorisation. A path
parameter is often one of the ids that exist (a demo entry, an offer set, a session), so the
handlers behind the 404 are reached too. Any 5xx fails; so does an answer whose status,
content type, headers or body the document does not describe for its operation.

Not checked: that every schema-valid request is accepted. The document cannot say everything
the catalogue and broker check (vocabulary terms, SPDX licences, an executable's kind), so a
generated document is mostly refused, rightly, with a 400 naming the field.

Rate limits are off (tests/conftest.py), as every request comes from one client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import settings_from_mapping
from tests.auth_support import named
from tests.catalogue_support import app_settings
from voexec.app import create_app

OPERATOR = "olga-operator-token-long-enough-for-voexec-fuzzing"
EXAMPLES = 25
"""Examples per operation: a bound on the time the module takes (about 30 s on one CPU)."""


@schemathesis.check
def success_schema_conformance(ctx: Any, response: Any, case: Any) -> bool | None:
    """The body of every 2xx and 3xx answer matches its schema.

    Refusals are left out: the broker answers a refused request with the request as it came,
    its messages added, and what came may be anything (a negative example's data item with no
    location), which no schema of a valid session describes.
    """
    if response.status_code >= 400:
        return None
    return response_schema_conformance(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    success_schema_conformance,
]

Operation = APIOperation[Any, Any, Any, Any]

pytestmark = pytest.mark.slow


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _existing_ids(app: Any) -> dict[str, list[str]]:
    """Ids that exist in the app, by path parameter name: an entry, an offer set, its offers.

    Asked through schemathesis's client, which shares the lifespan `from_asgi` started.
    """
    with asgi.get_client(app) as client:
        hits = client.get("/catalogue/search", params={"limit": 3}).json()["hits"]
        entries = [hit["id"] for hit in hits]
        assert entries, "the demo catalogue should be loaded"
        answer = client.post(
            f"/catalogue/executables/{entries[0]}/offers",
            headers={**bearer(OPERATOR), "accept": "application/json"},
            allow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        offers = client.get(answer.headers["location"], headers={"accept": "application/json"})
    urls = [answer.headers["location"], *(o["meta"]["url"] for o in offers.json()["offers"])]
    return {"entry_id": entries, "uuid": [url.rstrip("/").rsplit("/", 1)[-1] for url in urls]}


@pytest.fixture(scope="module")
def app_under_test(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = msgspec.to_builtins(app_settings(tmp_path_factory.mktemp("fuzz") / "var", demo=True))
    base["auth"] = {"tokens": [named("olga", OPERATOR, "operator")]}
    app = create_app(settings_from_mapping(base))
    yield app
    asgi.shutdown_lifespans()  # the lifespan schemathesis started for the app


@pytest.fixture(scope="module")
def api_schema(app_under_test: Any) -> BaseSchema:
    return schemathesis.openapi.from_asgi("/schema/openapi.json", app_under_test)


@pytest.fixture(scope="module")
def existing(app_under_test: Any, api_schema: BaseSchema) -> dict[str, list[str]]:
    return _existing_ids(app_under_test)


def _with_known_ids(case: Any, known: Mapping[str, list[str]], choice: st.DataObject) -> Any:
    """Replace some generated path parameters by ids that exist."""
    for name, value in dict(case.path_parameters or {}).items():
        if name in known and choice.draw(st.booleans()):
            case.path_parameters[name] = choice.draw(st.sampled_from(known[name]), label=name)
        else:
            case.path_parameters[name] = value
    return case


def _fuzz(operation: Operation, known: Mapping[str, list[str]]) -> str | None:
    """The first failure schemathesis finds in `operation` (shrunk), or None."""
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @given(case=cases, choice=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any], choice: st.DataObject) -> None:
        _with_known_ids(case, known, choice).call_and_validate(
            headers=bearer(OPERATOR), checks=CHECKS
        )

    try:
        run()
    # Schemathesis reports its failures as exception groups (BaseException); report each
    # operation's and go on to the next.
    except BaseException as failure:
        if not isinstance(failure, Exception | BaseExceptionGroup):
            raise  # KeyboardInterrupt and the like
        return f"{operation.label}: {failure}"
    return None


def test_every_operation_answers_as_documented_and_never_a_server_error(
    api_schema: BaseSchema, existing: dict[str, list[str]]
) -> None:
    results = list(api_schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "every operation of the document can be read"
    labels = {operation.label for operation in operations}
    assert {"POST /catalogue/executables", "POST /broker/requests"} <= labels
    failures = [failure for operation in operations if (failure := _fuzz(operation, existing))]
    assert not failures, "\n\n".join(failures)
