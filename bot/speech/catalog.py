"""What each speech engine offers (voices, speeds) and which models OpenAI is shutting down, with when.

Plain constants and pure functions: the settings loader, ``speechbot check`` and the engines read them, so a
model name means the same thing everywhere. Sources: the ``openai`` SDK's types (``RealtimeAudioConfigOutput``:
the voices and the 0.25-1.5 speed range; ``RealtimeSessionCreateRequest.model``: the 2027-01-20 shutdowns) and
OpenAI's text-to-speech guide (the 2027-01-06 shutdowns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from bot.i18n import ENGLISH, translate

#: ``SPEECH_MODEL`` names starting with this are Realtime models, served over a WebSocket, not /audio/speech.
REALTIME_MODEL_PREFIX = "gpt-realtime"
#: What OpenAI names as the replacement of its /audio/speech models.
RECOMMENDED_REALTIME_MODEL = "gpt-realtime-2.1-mini"
#: Where the Realtime API lives (``SPEECH_API_BASE_URL`` for OpenAI itself).
OPENAI_BASE_URL = "https://api.openai.com/v1"

#: The built-in voices of the Realtime API (SDK: ``RealtimeAudioConfigOutput.voice``).
REALTIME_VOICES: tuple[str, ...] = (
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
)
#: The built-in voices of ``/audio/speech`` (SDK: ``speech_create_params.Voice``), what ``gpt-4o-mini-tts`` takes.
OPENAI_SPEECH_VOICES: tuple[str, ...] = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar",
)
#: What ``tts-1`` and ``tts-1-hd`` take (OpenAI's guide; ``ballad`` on ``tts-1`` is a 400).
TTS1_VOICES: tuple[str, ...] = ("alloy", "ash", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer")
#: The six voices every OpenAI-compatible server and reseller knows (apimart documents only these): the offer
#: for a model this catalog does not know, or an OpenAI model served by someone other than OpenAI.
CLASSIC_VOICES: tuple[str, ...] = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
#: A custom voice made from audio samples is named like this and sent as ``{"id": name}``.
CUSTOM_VOICE_PREFIX = "voice_"


@dataclass(frozen=True, slots=True)
class SpeedRange:
    """The speeds an engine can do, both ends included."""

    low: float
    high: float

    def __contains__(self, speed: object) -> bool:
        return isinstance(speed, (int, float)) and self.low <= speed <= self.high

    def __str__(self) -> str:
        return f"{self.low:g} to {self.high:g}"

    def in_words(self, language: str = ENGLISH) -> str:
        """"0.5 to 2" in ``language`` ("0,5 bis 2"); English is :meth:`__str__`."""
        if language == ENGLISH:
            return str(self)
        return translate(language, "{low} to {high}", low=self.low, high=self.high)


#: ``/audio/speech`` (OpenAPI ``CreateSpeechRequest.speed``) and the offline engine.
SPEECH_API_SPEEDS = SpeedRange(0.25, 4.0)
#: The Realtime API (``session.audio.output.speed``; it exists only on the session).
REALTIME_SPEEDS = SpeedRange(0.25, 1.5)

#: Models OpenAI shuts down, and the day.
SHUTDOWNS: dict[str, date] = {
    "tts-1": date(2027, 1, 6),
    "tts-1-hd": date(2027, 1, 6),
    "gpt-4o-mini-tts": date(2027, 1, 6),
    "gpt-4o-mini-tts-2025-12-15": date(2027, 1, 6),
    "gpt-realtime": date(2027, 1, 20),
    "gpt-realtime-2025-08-28": date(2027, 1, 20),
    "gpt-realtime-mini": date(2027, 1, 20),
    "gpt-realtime-mini-2025-12-15": date(2027, 1, 20),
}


def is_realtime_model(model: str) -> bool:
    """True for a model the Realtime API serves (``gpt-realtime``, ``gpt-realtime-2.1-mini``, ...)."""
    return model.startswith(REALTIME_MODEL_PREFIX)


def shutdown_date(model: str) -> date | None:
    """The day OpenAI shuts ``model`` down, or None when it has not announced one."""
    return SHUTDOWNS.get(model)


def default_voices(model: str, base_url: str) -> tuple[str, ...]:
    """The voices offered when neither the server lists its own nor ``SPEECH_VOICES`` is set: OpenAI's current
    list for its model when OpenAI itself serves it, else the six classic voices (resellers and compatible
    servers that take OpenAI's model names list only those). The Realtime API's are ``REALTIME_VOICES``."""
    if base_url.rstrip("/") != OPENAI_BASE_URL:
        return CLASSIC_VOICES
    if model in ("tts-1", "tts-1-hd"):
        return TTS1_VOICES
    if model.startswith("gpt-4o-mini-tts"):
        return OPENAI_SPEECH_VOICES
    return CLASSIC_VOICES


def voices_text(voices: Sequence[str], limit: int = 15) -> str:
    """The offered voices for an error message: all of a short list, the start of a long one (a server may list
    hundreds; a Discord message stops at 2,000 characters)."""
    if len(voices) <= limit:
        return ", ".join(voices)
    return f"{', '.join(voices[:limit])} and {len(voices) - limit} more (type in the voice option to search them)"


def parse_speed_range(raw: str) -> SpeedRange | None:
    """``SPEECH_SPEED_RANGE`` (``0.5-2``, ``0.5..2`` or ``0.5,2``) within the API's 0.25-4; None when it is not."""
    parts = [part.strip() for part in raw.replace("..", "-").replace(",", "-").split("-")]
    if len(parts) != 2:
        return None
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (SPEECH_API_SPEEDS.low <= low <= high <= SPEECH_API_SPEEDS.high):
        return None
    return SpeedRange(low, high)


def is_realtime_voice(voice: str) -> bool:
    """A built-in Realtime voice, or the id of a custom voice (``voice_...``)."""
    return voice in REALTIME_VOICES or (voice.startswith(CUSTOM_VOICE_PREFIX) and len(voice) > len(CUSTOM_VOICE_PREFIX))
