"""The broker's use cases, named by step.

Read the demand (`demand`), place offers (`offers`),
call the platforms (`platforms`), shape the answers (`shape`), drive the work queue (`worker`).

`BrokerService` (in `broker.service.broker`) ties them together; it and its exceptions are
re-exported here, so callers write `from broker.service import BrokerService`.
"""

from broker.service.broker import (
    CLIENT_UPDATES,
    AcceptRefused,
    BrokerService,
    DirectExecutionFailed,
    IllegalUpdate,
    TooManyHeldOffers,
)

__all__ = [
    "CLIENT_UPDATES",
    "AcceptRefused",
    "BrokerService",
    "DirectExecutionFailed",
    "IllegalUpdate",
    "TooManyHeldOffers",
]
