"""A whole body from one format to another (a voice message must be Ogg Opus whatever the server sent)."""

from __future__ import annotations

from bot.audio.decode import decode_to_pcm
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat

_RATE = 48_000  # Opus's own rate: nothing is lost to resampling on the way in


def transcode(data: bytes, source: AudioFormat, target: AudioFormat) -> bytes:
    """``data`` (a whole ``source`` body) as a ``target`` body, mono."""
    return encode_pcm(decode_to_pcm(data, source, rate=_RATE, channels=1), _RATE, target)
