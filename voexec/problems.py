"""One table from domain errors to HTTP answers (RFC 9457 problem details).

Every package raises `core.errors.DomainError` subclasses; this module is the only place that
decides their status codes. The broker's routes answer in the broker's own `meta.messages` shape
(see `broker/web.py`); everything else answers `application/problem+json`.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from core.errors import (
    ConfigError,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

PROBLEM_JSON: Final = "application/problem+json"
LOGGER = logging.getLogger(__name__)

STATUS_OF: Final[dict[type[DomainError], tuple[int, str]]] = {
    NotFound: (404, "Not Found"),
    Conflict: (409, "Conflict"),
    Invalid: (400, "Bad Request"),
    Forbidden: (403, "Forbidden"),
    Unauthorized: (401, "Unauthorized"),
    TooManyRequests: (429, "Too Many Requests"),
    Unavailable: (503, "Service Unavailable"),
    ConfigError: (500, "Configuration Error"),
}


def status_of(error: DomainError) -> tuple[int, str]:
    """The HTTP status and title for a domain error (most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500, "Internal Server Error"


def problem(status: int, title: str, detail: str, instance: str, **extra: Any) -> Response[bytes]:
    """An RFC 9457 problem-details answer."""
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def domain_error_handler(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    """Answer a domain error as problem details naming the fields at fault."""
    status, title = status_of(error)
    extra: dict[str, Any] = {}
    if isinstance(error, Invalid) and error.problems:
        extra["problems"] = [
            {
                "field": p.field,
                "reason": p.reason,
                **({"suggestions": list(p.suggestions)} if p.suggestions else {}),
            }
            for p in error.problems
        ]
    answer = problem(status, title, error.message, request.url.path, **extra)
    if isinstance(error, TooManyRequests):
        answer.headers["retry-after"] = str(error.retry_after)  # when to come back (RFC 9110)
    return answer


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    """Framework errors (404 route, 405, 413, validation) as problem details too."""
    extra: dict[str, Any] = {}
    if isinstance(error, ValidationException) and isinstance(error.extra, list):
        extra["problems"] = [
            {"field": str(item.get("key", "")), "reason": str(item.get("message", ""))}
            for item in error.extra
            if isinstance(item, dict)
        ]
    return problem(
        error.status_code,
        type(error).__name__.replace("Exception", "") or "Error",
        str(error.detail),
        request.url.path,
        **extra,
    )


def unexpected_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    """Last resort: a 500 without a stack trace in the body (it goes to the log)."""
    LOGGER.error("unexpected error on %s", request.url.path, exc_info=error)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal Server Error",
        "An unexpected error occurred; it has been logged.",
        request.url.path,
    )


EXCEPTION_HANDLERS: Final = {
    DomainError: domain_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
