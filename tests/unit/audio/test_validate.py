"""bot.audio.validate: intact audio of every format passes; damaged audio is refused with the reason."""

from __future__ import annotations

import math
import struct

import pytest

from bot.audio.decode import AudioDecodeError
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.validate import check_audio

RATE = 24_000
TONE = b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / RATE)).to_bytes(2, "little", signed=True)
                for n in range(RATE))
FORMATS = [AudioFormat.OPUS, AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.AAC, AudioFormat.PCM]


def flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


@pytest.mark.parametrize("fmt", FORMATS)
def test_intact_audio_of_every_format_passes(fmt: AudioFormat) -> None:
    check_audio(encode_pcm(TONE, RATE, fmt), fmt)


def test_streamed_wav_with_unknown_sizes_passes() -> None:
    """Servers that stream WAV announce sizes of 0xFFFFFFFF (OpenAI does)."""
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 0xFFFFFFFF, b"WAVE", b"fmt ", 16, 1, 1, RATE, 2 * RATE, 2,
                         16, b"data", 0xFFFFFFFF)
    check_audio(header + TONE, AudioFormat.WAV)


@pytest.mark.parametrize("fmt", [AudioFormat.OPUS, AudioFormat.FLAC, AudioFormat.AAC])
@pytest.mark.parametrize("damage", ["flipped", "cut short", "garbage after the header"])
def test_damaged_compressed_audio_is_refused(fmt: AudioFormat, damage: str) -> None:
    good = encode_pcm(TONE, RATE, fmt)
    bad = {"flipped": flipped(good), "cut short": good[: len(good) * 2 // 3 + 1],
           "garbage after the header": good[:64] + bytes(range(256)) * 20}[damage]
    with pytest.raises(AudioDecodeError):
        check_audio(bad, fmt)


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"", AudioFormat.OPUS, "empty"),
        (b"OggS" + bytes(range(256)) * 8, AudioFormat.OPUS, "Ogg"),
        (TONE[:-1], AudioFormat.PCM, "odd number of bytes"),
        (encode_pcm(TONE, RATE, AudioFormat.WAV)[:-100], AudioFormat.WAV, "truncated"),
        (b"RIFF\x00\x00\x00\x00WAVE", AudioFormat.WAV, "ends before its audio data starts"),
    ],
)
def test_the_reason_says_what_is_wrong(data: bytes, fmt: AudioFormat, reason: str) -> None:
    with pytest.raises(AudioDecodeError, match=reason):
        check_audio(data, fmt)
