"""What the speech layer reports about itself (token usage, transcript checks, failovers), without knowing who
listens: :class:`bot.metrics.Metrics` implements :class:`SpeechObserver`; tests and the CLI use the silent one."""

from __future__ import annotations

from typing import Protocol


class SpeechObserver(Protocol):
    def tokens_used(self, backend: str, input_tokens: int, output_tokens: int, output_audio_tokens: int) -> None:
        """A Realtime response's ``usage`` (billing is by token there, not by character)."""

    def transcript_checked(self, backend: str, deviation: float, rejected: bool) -> None:
        """A voice model's transcript was compared with the text: how far it was, and whether that was too far."""

    def failed_over(self, engine: str, reason: str) -> None:
        """A request was served by the fallback ``engine`` because the primary could not (``reason``)."""


class SilentObserver:
    """Reports nothing."""

    def tokens_used(self, backend: str, input_tokens: int, output_tokens: int, output_audio_tokens: int) -> None:
        return None

    def transcript_checked(self, backend: str, deviation: float, rejected: bool) -> None:
        return None

    def failed_over(self, engine: str, reason: str) -> None:
        return None
