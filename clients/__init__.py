"""rsim clients: the Python SDK (`Client`, `AsyncClient`) and the `rsim` command line."""

from clients.errors import (APIError, AuthenticationError, BadRequestError, NotFoundError, OverloadedError,
                            PlannerUnavailableError, RsimClientError, ServerError, TimeoutError_)
from clients.sdk import AsyncClient, Client

__all__ = ["Client", "AsyncClient", "APIError", "AuthenticationError", "BadRequestError", "NotFoundError",
           "OverloadedError", "PlannerUnavailableError", "RsimClientError", "ServerError", "TimeoutError_"]
