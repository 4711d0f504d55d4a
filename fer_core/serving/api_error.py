"""`ApiError`: a request the REST API refuses, with the HTTP status and message its JSON answer carries."""
from __future__ import annotations


class ApiError(Exception):
    """A request the API refuses: its HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
