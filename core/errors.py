"""The domain error tree, shared by every package.

Handlers never raise framework exceptions; services raise these, and the composition root
(`voexec/app.py`) maps each class to an HTTP status in one table.

```text
DomainError                  something the caller can act on
 ├── NotFound                the named thing does not exist            -> 404
 ├── Conflict                the thing exists but is in the wrong state -> 409
 ├── Invalid                 the input is wrong; carries field problems -> 400 / 422
 ├── Forbidden               the caller may not do this                 -> 403
 ├── Unauthorized            the caller did not say who they are        -> 401
 ├── TooManyRequests         the caller asks faster than allowed        -> 429 + Retry-After
 ├── Unavailable             a service we depend on is down             -> 503
 └── ConfigError             a setting is wrong (start-up only)
```
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a JSON-path-like field) and why."""

    field: str
    reason: str
    suggestions: tuple[str, ...] = ()


class DomainError(Exception):
    """Base class: an error with a message meant for the person who caused it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The named thing does not exist."""


class Conflict(DomainError):
    """The thing exists but its state forbids the operation."""


class Invalid(DomainError):
    """The input is wrong; `problems` names each field and the reason."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems or [])


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class Unauthorized(DomainError):
    """The caller did not authenticate (or the token is wrong)."""


class TooManyRequests(DomainError):
    """The caller asked more often than its rate limit allows; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A service we depend on (database, search cluster, platform) does not answer."""


class ConfigError(DomainError):
    """A setting is missing or wrong; the message names the setting."""
