"""SDK exceptions, one class per HTTP status family (L0)."""

from __future__ import annotations

from typing import Any


class RsimClientError(Exception):
    """Base of every SDK error."""


class APIError(RsimClientError):
    """The server answered with an error envelope."""

    def __init__(self, status_code: int, message: str, *, type: str | None = None, code: str | None = None,
                 param: str | None = None, body: Any = None, request_id: str | None = None):
        super().__init__(f"{status_code} {code or type or 'error'}: {message}")
        self.status_code, self.message, self.type, self.code, self.param = status_code, message, type, code, param
        self.body, self.request_id = body, request_id


class BadRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class NotFoundError(APIError):
    pass


class OverloadedError(APIError):
    pass


class ServerError(APIError):
    pass


class PlannerUnavailableError(ServerError):
    pass


class TimeoutError_(ServerError):
    """The server gave up waiting on an upstream (504)."""


def error_for(status_code: int, payload: Any, request_id: str | None = None) -> APIError:
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        err = {"message": str(payload)[:500]}
    code = err.get("code")
    cls: type[APIError]
    if status_code in (400, 422):
        cls = BadRequestError
    elif status_code in (401, 403):
        cls = AuthenticationError
    elif status_code == 404:
        cls = NotFoundError
    elif status_code == 429:
        cls = OverloadedError
    elif status_code == 503 and code == "planner_unavailable":
        cls = PlannerUnavailableError
    elif status_code == 504:
        cls = TimeoutError_
    elif status_code >= 500:
        cls = ServerError
    else:
        cls = APIError
    return cls(status_code, str(err.get("message", "")), type=err.get("type"), code=code, param=err.get("param"),
               body=payload, request_id=request_id)
