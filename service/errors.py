"""Typed errors and the one OpenAI error envelope they map to (L0)."""

from __future__ import annotations

from typing import Any


class RsimError(Exception):
    """Base error: carries its HTTP status and the OpenAI envelope fields."""

    status_code: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status_code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.message, type=self.type, param=self.param, code=self.code)


class InvalidRequest(RsimError):
    status_code, type, code = 400, "invalid_request_error", "invalid_request"


class Unauthorized(RsimError):
    status_code, type, code = 401, "authentication_error", "invalid_api_key"


class NotFound(RsimError):
    status_code, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(RsimError):
    status_code, type, code = 413, "invalid_request_error", "payload_too_large"


class Overloaded(RsimError):
    status_code, type, code = 429, "rate_limit_error", "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1, **kw: Any):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)}, **kw)


class ClientClosed(RsimError):
    """The client went away before its answer: nobody reads this one (nginx's 499), it is counted and
    logged as such — not as a server error with a traceback."""

    status_code, type, code = 499, "client_closed_request", "client_closed_request"


class UpstreamError(RsimError):
    """An upstream (reasoner or planner) failed. 4xx from upstream keep their status."""

    status_code, type, code = 502, "upstream_error", "upstream_error"


class PlannerUnavailable(RsimError):
    status_code, type, code = 503, "service_unavailable", "planner_unavailable"


class PlannerLate(PlannerUnavailable):
    """The planner did not decide in time (its deadline, or the client's): the loop takes a quiet step."""

    code = "planner_late"


class TraceStoreUnavailable(RsimError):
    """The trace store cannot take or apply a write now (its queue is full, the disk refused it): a label
    is safe to send again, so the answer says when (`Retry-After`)."""

    status_code, type, code = 503, "service_unavailable", "trace_store_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1, **kw: Any):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)}, **kw)


class NotReady(RsimError):
    status_code, type, code = 503, "service_unavailable", "not_ready"


class UpstreamTimeout(RsimError):
    status_code, type, code = 504, "timeout_error", "upstream_timeout"


def error_envelope(message: str, *, type: str = "server_error", param: str | None = None,
                   code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Build (message, param) from pydantic's errors list: param is the first field path."""
    parts, first_param = [], None
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "header")]
        path = ".".join(loc) or None
        first_param = first_param or path
        parts.append(f"{path}: {err.get('msg', 'invalid')}" if path else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request", first_param
