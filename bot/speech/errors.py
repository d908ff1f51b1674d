"""Typed speech errors whose ``user_message`` is always safe to show (never a key, never a traceback)."""

from __future__ import annotations


class SpeechError(Exception):
    """A synthesis failed.

    ``user_message`` is short, useful and safe for a Discord reply or a CLI line; ``status`` and ``code`` come
    from the endpoint when there was one; ``retryable`` says whether trying again later could work.
    """

    def __init__(
        self,
        user_message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"retryable={self.retryable!r}, message={self.user_message!r})"
        )


class SpeechValidationError(SpeechError):
    """The request was refused before anything was sent (bad text, voice, format, speed)."""


class SpeechUnavailableError(SpeechError):
    """No backend can run (no key and no offline engine installed, say)."""
