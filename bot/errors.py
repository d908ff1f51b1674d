"""Errors whose message is meant for the person who ran a command."""

from __future__ import annotations


class UserFacingError(Exception):
    """Raised by command code to refuse with a short message; shown ephemerally, never logged as a failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
