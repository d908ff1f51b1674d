"""The speech request contract and its validation, shared by every backend.

Validation happens before any backend is called, so a request the OpenAI spec would reject is never sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat
from bot.i18n import N_, Text
from bot.speech.catalog import SPEECH_API_SPEEDS, SpeedRange, voices_text
from bot.speech.errors import SpeechRewordedError, SpeechValidationError
from bot.text.normalize import is_blank

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 4096
MAX_INSTRUCTIONS_CHARS = 4096
MIN_SPEED = SPEECH_API_SPEEDS.low
MAX_SPEED = SPEECH_API_SPEEDS.high


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """What to say and how. ``text`` is what the user wrote; it is never logged."""

    text: str
    voice: str
    format: AudioFormat = AudioFormat.OPUS
    speed: float = 1.0
    instructions: str | None = None
    #: For playing, not for a file: ``format`` is only a preference, and the backend may serve another one the
    #: bot can play (wav, pcm) when the endpoint cannot make it (see ``bot.speech.client``).
    playback: bool = False
    #: The language the text is in when the caller knows it (read-aloud: the server's ``/settings language``;
    #: None for English or unknown): the offline engine speaks it with that language's voice (``LOCAL_VOICES``).
    #: OpenAI's ``/audio/speech`` takes no language (its models follow the text), so it is not sent there.
    language: str | None = None


#: What voice playback and read-aloud ask for first: Ogg Opus at 20 ms is passed through without transcoding.
PLAYBACK_FORMAT = AudioFormat.OPUS


@dataclass(frozen=True, slots=True)
class SynthesizedAudio:
    """A whole synthesized file, with the format sniffed from its bytes."""

    data: bytes
    format: AudioFormat


class SpeechStream(Protocol):
    """An open synthesis: the sniffed format, then the body as chunks.

    Iterating yields every byte of the body, starting with the bytes used for sniffing. A stream that
    ends early raises :class:`~bot.speech.errors.SpeechError` instead of ending quietly.
    """

    @property
    def format(self) -> AudioFormat: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class SpeechBackend(Protocol):
    """Anything that turns a validated :class:`SpeechRequest` into audio."""

    #: A short name for logs and ``speechbot check`` ("openai", "local").
    name: str

    async def open(self, request: SpeechRequest) -> SpeechStream:
        """Start synthesis; raises SpeechError (typed, user-safe) on failure."""
        ...

    async def start(self) -> None:
        """Get ready in the background (a warm connection); called once, in the bot's start-up."""
        ...

    async def close(self) -> None: ...


def validate_request(
    request: SpeechRequest,
    voices: Sequence[str],
    formats: Sequence[AudioFormat] = REQUESTABLE_FORMATS,
    speeds: SpeedRange = SPEECH_API_SPEEDS,
) -> SpeechRequest:
    """Return ``request`` with text and instructions stripped, or raise :class:`SpeechValidationError`.

    ``speeds`` is what the engine can do (the Realtime API stops at 1.5): a speed outside is refused, never
    clamped. The messages are shown to users as they are, so they say what to change.
    """
    text = request.text.strip()
    if not text:
        raise SpeechValidationError(N_("There is nothing to say: the text is empty."))
    if is_blank(text):
        raise SpeechValidationError(N_("There is nothing to say: the text has only invisible characters."))
    if len(text) > MAX_INPUT_CHARS:
        raise SpeechValidationError(
            Text(N_("The text is {length} characters long; the limit is {limit}."),
                 {"length": len(text), "limit": MAX_INPUT_CHARS})
        )
    if request.voice not in voices:
        raise SpeechValidationError(
            Text(N_("Unknown voice {voice}. Available voices: {voices}."),
                 {"voice": repr(request.voice[:40]), "voices": voices_text(voices)})
        )
    try:
        fmt = AudioFormat(request.format)
    except ValueError:
        fmt = None
    if fmt is None or fmt not in formats:
        raise SpeechValidationError(
            Text(N_("Unknown format {format}. Choose one of: {formats}."),
                 {"format": repr(str(request.format)[:20]), "formats": ", ".join(f.value for f in formats)})
        )
    speed = request.speed
    if not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed not in speeds:
        raise SpeechValidationError(
            Text(N_("Speed must be between {low} and {high}."), {"low": str(speeds.low), "high": str(speeds.high)})
        )
    instructions = (request.instructions or "").strip() or None
    if instructions is not None and len(instructions) > MAX_INSTRUCTIONS_CHARS:
        raise SpeechValidationError(
            Text(N_("The instructions are {length} characters long; the limit is {limit}."),
                 {"length": len(instructions), "limit": MAX_INSTRUCTIONS_CHARS})
        )
    return SpeechRequest(text=text, voice=request.voice, format=fmt, speed=float(speed), instructions=instructions,
                         playback=request.playback, language=request.language)


async def read_all(stream: SpeechStream) -> SynthesizedAudio:
    """Collect a stream into one file (for uploads and ``speechbot say``)."""
    parts: list[bytes] = []
    try:
        async for chunk in stream:
            parts.append(chunk)
    finally:
        await stream.aclose()
    return SynthesizedAudio(data=b"".join(parts), format=stream.format)


async def read_whole(open_stream: Callable[[], Awaitable[SpeechStream]]) -> SynthesizedAudio:
    """Open a synthesis and read it whole, asking once more when a voice model reworded the text: audio that
    nobody has heard yet can still be replaced (a stream being played cannot, see SpeechRewordedError)."""
    try:
        return await read_all(await open_stream())
    except SpeechRewordedError:
        log.info("the voice model reworded the text; asking once more")
        return await read_all(await open_stream())


async def synthesize(backend: SpeechBackend, request: SpeechRequest) -> SynthesizedAudio:
    """Open a synthesis on ``backend`` and read it whole (once more if it was reworded)."""
    return await read_whole(lambda: backend.open(request))


class BufferedSpeechStream:
    """A :class:`SpeechStream` over audio already in memory (played after it was uploaded, say)."""

    def __init__(self, audio: SynthesizedAudio, chunk_size: int = 16 * 1024) -> None:
        self._audio = audio
        self._chunk_size = chunk_size

    @property
    def format(self) -> AudioFormat:
        return self._audio.format

    async def __aiter__(self) -> AsyncIterator[bytes]:
        data = self._audio.data
        for start in range(0, len(data), self._chunk_size):
            yield data[start : start + self._chunk_size]

    async def aclose(self) -> None:
        return None
