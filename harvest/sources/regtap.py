"""An IVOA registry read over RegTAP (TAP + ADQL on the `rr` schema), with pyvo.

The only pyvo user. Two questions are asked of a RegTAP 1.1 service's synchronous endpoint:

* `brokers`: resources with an Execution Broker capability (`rr.capability.standard_id`, which
  RegTAP keeps in lower case) and the access URL of its interface: candidate `remote`
  platforms, listed for the operator (docs/federation.md); nothing is configured by itself.
* `software`: plain `vr:resource` resources with a UAT software subject and a
  reference URL, the same records the OAI-PMH source turns into catalogue entries
  (`harvest.registry_records`: the subjects decide what is software, the reference URL whether
  voexec can run it).

Values coming from the registry are quoted into ADQL only after checking them against a strict
pattern: ADQL has no parameters.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

import pyvo

from harvest.registry_records import SOFTWARE_SUBJECTS, description_url

__all__ = ["BROKER_STANDARD", "BrokerCandidate", "RegTapClient", "RegTapError", "SoftwareRecord"]

BROKER_STANDARD: Final = "ivo://ivoa.net/std/executionbroker"
"""The broker capability's standardID as RegTAP stores it (lower case); the Working Draft
fixes none yet, so it is a setting (`registry.broker_standard_id` publishes ours)."""
_SAFE: Final = re.compile(r"^[A-Za-z0-9:/._~#?=&-]+$")


class RegTapError(Exception):
    """The RegTAP service could not answer (unreachable, an ADQL error, not a VOTable)."""


@dataclass(frozen=True, slots=True)
class BrokerCandidate:
    """A resource with an Execution Broker capability: a candidate remote platform."""

    ivoid: str
    title: str
    url: str
    """The capability's access URL (the broker's API root)."""


@dataclass(frozen=True, slots=True)
class SoftwareRecord:
    """A software resource of the registry and whether voexec can run it."""

    ivoid: str
    title: str
    reference_url: str
    subjects: tuple[str, ...]

    @property
    def description_url(self) -> str | None:
        """The voexec Execution Broker description beside its entry page, else None."""
        return description_url(self.reference_url)


class RegTapClient:
    """Asks one RegTAP service (its TAP base URL) over the synchronous endpoint."""

    def __init__(self, url: str, *, max_records: int = 10000) -> None:
        self.url = url.rstrip("/")
        self.max_records = max_records
        self._service = pyvo.dal.TAPService(self.url)

    def _rows(self, adql: str) -> list[dict[str, Any]]:
        try:
            table = self._service.run_sync(adql, maxrec=self.max_records).to_table()
        except Exception as error:  # noqa: BLE001 - pyvo raises many kinds (network, DAL, VOTable)
            raise RegTapError(f"{self.url}: {type(error).__name__}: {error}") from None
        names = table.colnames
        return [{name: _text(row[name]) for name in names} for row in table]

    def brokers(self, standard_id: str = BROKER_STANDARD) -> list[BrokerCandidate]:
        """Resources with an Execution Broker capability, with its access URL."""
        wanted = standard_id.lower()
        if not _SAFE.match(wanted):
            raise ValueError(f"standard id {standard_id!r} has characters ADQL would need quoted")
        rows = self._rows(
            "SELECT r.ivoid, r.res_title, i.access_url FROM rr.resource AS r "  # noqa: S608 - _SAFE
            "NATURAL JOIN rr.capability AS c NATURAL JOIN rr.interface AS i "
            f"WHERE c.standard_id = '{wanted}' ORDER BY r.ivoid"
        )
        found: dict[str, BrokerCandidate] = {}
        for row in rows:
            ivoid, url = row.get("ivoid"), row.get("access_url")
            if ivoid and url and ivoid not in found:
                found[ivoid] = BrokerCandidate(ivoid, row.get("res_title") or ivoid, url)
        return list(found.values())

    def software(self) -> list[SoftwareRecord]:
        """Plain resources with a UAT software subject, with their reference URL."""
        subjects = ", ".join(f"'{s}'" for s in sorted(SOFTWARE_SUBJECTS))
        rows = self._rows(
            "SELECT r.ivoid, r.res_title, r.reference_url, s.res_subject "  # noqa: S608 - constants
            "FROM rr.resource AS r "
            "NATURAL JOIN rr.res_subject AS s "
            f"WHERE r.res_type = 'vr:resource' AND s.res_subject IN ({subjects}) "
            "ORDER BY r.ivoid"
        )
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if row.get("ivoid"):
                grouped[row["ivoid"]].append(row)
        return [
            SoftwareRecord(
                ivoid=ivoid,
                title=items[0].get("res_title") or ivoid,
                reference_url=items[0].get("reference_url") or "",
                subjects=tuple(sorted({i["res_subject"] for i in items if i.get("res_subject")})),
            )
            for ivoid, items in grouped.items()
        ]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    text = "" if value is None else str(value)
    return "" if text == "--" else text  # a masked (null) cell
