"""What a Discord voice message shows besides its audio: its length and a waveform (up to 256 amplitudes, one
byte each, base64), computed from the Ogg Opus body as Discord's own clients do (about one sample per 100 ms)."""

from __future__ import annotations

import base64
import math

import numpy as np

from bot.audio.decode import decode_to_pcm
from bot.audio.formats import AudioFormat

#: Discord keeps at most 256 waveform samples; its clients take one about every 100 ms.
MAX_SAMPLES = 256
SAMPLE_SECONDS = 0.1
_RATE = 8_000  # plenty to follow the loudness of speech, cheap to decode to


def voice_message_shape(ogg_opus: bytes) -> tuple[float, str]:
    """(duration in seconds, base64 waveform) of an Ogg Opus body."""
    pcm = np.abs(np.frombuffer(decode_to_pcm(ogg_opus, AudioFormat.OPUS, rate=_RATE, channels=1), "<i2")
                 .astype(np.int32))
    duration = len(pcm) / _RATE
    count = max(1, min(MAX_SAMPLES, math.ceil(duration / SAMPLE_SECONDS)))
    size = max(1, math.ceil(len(pcm) / count))
    peaks = np.array([chunk.max() for chunk in np.array_split(pcm, range(size, len(pcm), size))][:count]
                     if len(pcm) else [0])
    amplitudes = np.round(255 * peaks / (peaks.max() or 1)).astype(np.uint8)
    return round(duration, 2), base64.b64encode(amplitudes.tobytes()).decode("ascii")
