"""Typed speech errors whose ``user_message`` is always safe to show (never a key, never a traceback).

The subclasses say what kind of trouble it was, so callers can react (tell the owner to fix the key, tell the
user to wait) without parsing messages; every one is still a :class:`SpeechError`.
"""

from __future__ import annotations

from bot.i18n import ENGLISH, Text


class SpeechError(Exception):
    """A synthesis failed.

    ``user_message`` is short, useful and safe for a Discord reply or a CLI line; ``status`` and ``code`` come
    from the endpoint when there was one; ``retryable`` says whether trying again later could work.
    ``user_message`` may be given as a :class:`~bot.i18n.Text` (a catalogue message id and its parameters): it is
    then the English rendering, and :meth:`localized` says it in a member's language. A plain string is looked up
    in the catalogues as it is (a marked constant is found; anything else stays as it was).
    ``detail`` is what the endpoint itself said (redacted and trimmed), for the owner's logs.
    """

    def __init__(
        self,
        user_message: str | Text,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        detail: str | None = None,
        param: str | None = None,
        unavailable: str | None = None,
    ) -> None:
        self.text = user_message if isinstance(user_message, Text) else Text(user_message)
        #: The English message (logs, the CLI); :meth:`localized` for a member.
        self.user_message = self.text.render(ENGLISH)
        super().__init__(self.user_message)
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail
        #: The request field the endpoint blamed (OpenAI's ``error.param``, FastAPI's ``loc``), when it said.
        self.param = param
        #: "voice", "model" or "format" when the endpoint said the one asked for is unknown or unavailable.
        self.unavailable = unavailable

    def localized(self, language: str) -> str:
        """The message in ``language`` (what the speech server itself said stays as it said it)."""
        return self.text.render(language)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"retryable={self.retryable!r}, message={self.user_message!r})"
        )


class SpeechValidationError(SpeechError):
    """The request was refused before anything was sent (bad text, voice, format, speed)."""


class SpeechUnavailableError(SpeechError):
    """No backend can run (no key and no offline engine installed, say)."""


class SpeechAuthError(SpeechError):
    """The endpoint refused the bot itself (401 bad key, 403 permission or region): the owner must act."""


class SpeechRateLimitError(SpeechError):
    """429: too many requests (retryable) or out of credit (``code == "insufficient_quota"``, not retryable)."""


class SpeechRejectedError(SpeechError):
    """The endpoint refused this request (400, 404, 422, other 4xx, or a 5xx saying the voice, model or format
    is unknown or unavailable): sending it again will not help."""


class SpeechServiceError(SpeechError):
    """The endpoint failed (5xx) or answered with something that is not audio."""


class SpeechTimeoutError(SpeechError):
    """The endpoint did not answer, or stopped sending, within the configured timeouts."""


class SpeechConnectionError(SpeechError):
    """The endpoint could not be reached, or the connection broke."""


class SpeechRewordedError(SpeechError):
    """A voice model said something other than the text (its transcript deviates): its audio is not used.

    Raised at the end of the stream that carried it, so that audio is never cached or uploaded; a caller that
    reads whole files asks once more (:func:`bot.speech.models.read_whole`)."""
