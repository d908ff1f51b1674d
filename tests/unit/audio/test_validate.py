"""bot.audio.validate: intact audio of every format passes; damaged audio is refused with the reason."""

from __future__ import annotations

import math
import struct

import pytest

from bot.audio.decode import AudioDecodeError
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.ogg import ogg_crc
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


def ogg_page(packet: bytes, sequence: int, *, first: bool = False, last: bool = False) -> bytes:
    """One Ogg page holding ``packet`` (under 255 bytes), with a correct CRC: framing intact, content not."""
    assert len(packet) < 255
    flags = (2 if first else 0) | (4 if last else 0)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, 0, 1234, sequence, 0, 1) + bytes([len(packet)])
    page = header + packet
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def ogg_opus(*audio_packets: bytes) -> bytes:
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 24_000, 0, 0)
    pages = [ogg_page(head, 0, first=True), ogg_page(b"OpusTags" + struct.pack("<I", 0) + struct.pack("<I", 0), 1)]
    pages += [ogg_page(p, i + 2, last=i == len(audio_packets) - 1) for i, p in enumerate(audio_packets)]
    return b"".join(pages)


def test_well_framed_pages_of_well_formed_packets_pass() -> None:
    check_audio(ogg_opus(b"\xf8\xff\xfe", b"\xf8" + bytes(40)), AudioFormat.OPUS)


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (b"", "empty"),
        (b"\xf9" + bytes(41), "odd payload"),  # code 1: two equal frames cannot share 41 bytes
        (b"\xfa\xfd\x04" + bytes(10), "shorter than its first frame"),  # code 2: first frame 253+16 bytes
        (b"\xfb\x00", "zero frames"),  # code 3 with no frame
        (b"\xfb\x07" + bytes(14), "at most 120"),  # 7 × 20 ms
        (b"\xfb\x03" + bytes(10), "equal frames"),  # CBR: 10 bytes do not split into 3
    ],
)
def test_ogg_pages_with_a_correct_crc_but_a_malformed_opus_packet_are_refused(packet: bytes, why: str) -> None:
    with pytest.raises(AudioDecodeError, match=why):
        check_audio(ogg_opus(b"\xf8\xff\xfe", packet), AudioFormat.OPUS)


def test_ogg_that_is_not_opus_is_refused() -> None:
    body = b"".join(ogg_page(b"\x01vorbis" + bytes(20), i, first=i == 0, last=i == 2) for i in range(3))
    with pytest.raises(AudioDecodeError, match="not Opus"):
        check_audio(body, AudioFormat.OPUS)
