"""bot.audio.waveform: a voice message's duration and waveform follow the audio."""

from __future__ import annotations

import base64
import math

from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.waveform import MAX_SAMPLES, voice_message_shape

RATE = 24_000


def tone(seconds: float, loudness: float) -> bytes:
    return b"".join(int(loudness * 20000 * math.sin(2 * math.pi * 440 * n / RATE)).to_bytes(2, "little", signed=True)
                    for n in range(int(seconds * RATE)))


def test_duration_and_one_sample_per_100_ms_that_follow_the_loudness() -> None:
    body = encode_pcm(tone(1.0, 0.05) + tone(1.0, 1.0), RATE, AudioFormat.OPUS)  # quiet, then loud
    duration, waveform = voice_message_shape(body)
    amplitudes = base64.b64decode(waveform)
    assert 1.9 <= duration <= 2.1
    assert 19 <= len(amplitudes) <= 21
    assert max(amplitudes) == 255
    assert sum(amplitudes[: len(amplitudes) // 2 - 1]) * 5 < sum(amplitudes[len(amplitudes) // 2 + 1 :])


def test_a_long_message_keeps_at_most_256_samples() -> None:
    duration, waveform = voice_message_shape(encode_pcm(tone(40.0, 0.5), RATE, AudioFormat.OPUS))
    assert duration > 39 and len(base64.b64decode(waveform)) == MAX_SAMPLES
