"""Logging set-up: one line per event, secrets scrubbed from every record as a last line of defence."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replaces secret values anywhere in a formatted record (message, arguments, traceback)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        scrubbed = self._scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once: stderr, one line per record, secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.http logs every request at DEBUG; keep it quiet unless something is wrong. discord.webhook logs
    # interaction replies at DEBUG with their URL, which carries the interaction token (a credential for 15
    # minutes); its warnings (rate limits) name only the webhook id.
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    logging.getLogger("discord.webhook").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, logging.getLevelName(level)))
