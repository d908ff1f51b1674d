"""Errors whose message is meant for the person who ran a command."""

from __future__ import annotations

from bot.i18n import ENGLISH, Text


class UserFacingError(Exception):
    """Raised by command code to refuse with a short message; shown ephemerally, never logged as a failure.

    ``message`` is the English text with ``{name}`` placeholders (a message id of the catalogues); the reply
    renders it in the caller's language with :meth:`localized`. ``.message`` is the English rendering (for logs).
    """

    def __init__(self, message: str, /, **params: object) -> None:
        self.text = Text(message, params)
        self.message = self.text.render(ENGLISH)
        super().__init__(self.message)

    def localized(self, language: str) -> str:
        return self.text.render(language)
