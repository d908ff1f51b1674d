"""Streamed bodies of every format to 20 ms Opus packets, checked on real speech by bytes, TOC, decode and ear."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import struct
import threading
import time
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest

from bot.audio.decode import AudioDecodeError, duration_seconds
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.ogg import OggPacketReader, ogg_crc
from bot.audio.opus import SAMPLE_RATE, SAMPLES_PER_FRAME, packet_duration_ms, packet_samples
from bot.audio.packetizer import OpusPacketizer, opus_packet_batches
from tests.support.audio_check import recognize, to_16k_mono
from tests.unit.audio.test_ogg import ogg_stream, pyav_packets, speech_pcm

PHRASE = "please join the voice channel"
PHRASES = [PHRASE, "hello world", "good morning everyone", "open the door", "thank you for listening"]
DURATION_TOLERANCE = 0.060
#: libopus's lookahead at 48 kHz (2.5 ms + 4 ms), the delay a fresh encoder adds.
ENCODER_DELAY = 312

BODIES = ["wav", "streamed-wav", "pcm", "flac", "aac", "mp3", "opus-20", "opus-40", "opus-60", "opus-20-then-60"]


@functools.cache
def body(name: str) -> tuple[bytes, AudioFormat]:
    """The test phrase as a whole body in the named flavour."""
    pcm, rate = speech_pcm()
    if name == "streamed-wav":
        data = bytearray(encode_pcm(pcm, rate, AudioFormat.WAV))
        data[4:8] = data[data.index(b"data") + 4 : data.index(b"data") + 8] = b"\xff\xff\xff\xff"
        return bytes(data), AudioFormat.WAV
    if name == "mp3":
        return encode_mp3(pcm, rate), AudioFormat.MP3
    if name in ("opus-40", "opus-60"):
        return encode_ogg_opus(pcm, rate, name.removeprefix("opus-")), AudioFormat.OPUS
    if name == "opus-20-then-60":
        return mixed_ogg_opus(), AudioFormat.OPUS
    fmt = AudioFormat(name.removesuffix("-20"))
    return encode_pcm(pcm, rate, fmt), fmt


def encode_mp3(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as box:
        stream = box.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = 64_000
        box.mux(stream.encode(s16_frame(pcm, rate)))
        box.mux(stream.encode(None))
    return out.getvalue()


def encode_ogg_opus(pcm: bytes, rate: int, frame_duration: str) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as box:
        stream = box.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 48_000
        stream.codec_context.options = {"frame_duration": frame_duration}
        box.mux(stream.encode(s16_frame(pcm, rate)))
        box.mux(stream.encode(None))
    return out.getvalue()


def mixed_ogg_opus() -> bytes:
    """20 ms packets for the first half of the phrase, then 60 ms packets from a second encoder."""
    pcm, rate = speech_pcm()
    half = len(pcm) // 4 * 2
    first = OggPacketReader().feed(encode_pcm(pcm[:half], rate, AudioFormat.OPUS))
    second = OggPacketReader().feed(encode_ogg_opus(pcm[half:], rate, "60"))[2:]
    packets = first + second
    granules = list(np.cumsum([0, 0] + [packet_samples(p) for p in packets[2:]]))
    return ogg_stream(packets, granules=[int(g) for g in granules], own_pages=2)


def s16_frame(pcm: bytes, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    return frame


#: A body fed a byte at a time goes so only through its first bytes (every header and the first packets of each
#: format), then the rest in one piece: the whole of the FLAC body a byte at a time cost over a second of CPU.
BYTEWISE_PREFIX = 2 * 1024


def packetize(data: bytes, fmt: AudioFormat, chunk_size: int | None = None) -> list[bytes]:
    """Packets of ``data`` fed whole or in chunks of ``chunk_size`` (1: through :data:`BYTEWISE_PREFIX`)."""
    if chunk_size is None:
        chunks = [data]
    else:
        end = min(len(data), BYTEWISE_PREFIX) if chunk_size == 1 else len(data)
        chunks = [*(data[start : min(start + chunk_size, end)] for start in range(0, end, chunk_size)), data[end:]]
    with OpusPacketizer(fmt) as packetizer:
        packets = [p for chunk in chunks if chunk for p in packetizer.feed(chunk)]
        return packets + packetizer.finish()


@functools.cache
def packetized(name: str) -> tuple[bytes, ...]:
    return tuple(packetize(*body(name)))


def decode_packets(packets: list[bytes] | tuple[bytes, ...]) -> list[np.ndarray]:
    """Each packet decoded on its own by libopus, as interleaved s16 stereo at 48 kHz (what Discord hears)."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "stereo"
    decoder.format = "s16"
    return [np.concatenate([f.to_ndarray().ravel() for f in decoder.decode(av.Packet(p))]) for p in packets]


def test_20ms_ogg_opus_passes_through_byte_identical() -> None:
    data, fmt = body("opus-20")
    with OpusPacketizer(fmt) as packetizer:
        assert packetizer.passthrough is None
        packets = packetizer.feed(data) + packetizer.finish()
        assert packetizer.passthrough is True
    assert packets == pyav_packets(data)


@pytest.mark.parametrize("name", BODIES)
def test_every_packet_is_20ms_and_decodes_to_960_samples(name: str) -> None:
    packets = packetized(name)
    assert packets
    assert {packet_duration_ms(p) for p in packets} == {20}
    assert {len(pcm) for pcm in decode_packets(packets)} == {2 * SAMPLES_PER_FRAME}


@pytest.mark.parametrize("name", BODIES)
def test_duration_matches_the_source(name: str) -> None:
    data, fmt = body(name)
    played = len(packetized(name)) * SAMPLES_PER_FRAME / SAMPLE_RATE
    assert played == pytest.approx(duration_seconds(data, fmt), abs=DURATION_TOLERANCE)


@pytest.mark.parametrize("name", BODIES)
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_chunk_size_does_not_change_the_packets(name: str, chunk_size: int) -> None:
    data, fmt = body(name)
    assert tuple(packetize(data, fmt, chunk_size)) == packetized(name)


@pytest.mark.parametrize(
    ("name", "fraction"),
    # Ogg needs a whole page (PyAV writes 1 s pages); FFmpeg's FLAC parser lags by ~10 frames (32 KiB here).
    [("wav", 0.3), ("streamed-wav", 0.3), ("pcm", 0.3), ("aac", 0.3), ("mp3", 0.3), ("opus-60", 0.75), ("flac", 0.8)],
)
def test_packets_come_out_before_the_body_ends(name: str, fraction: float) -> None:
    data, fmt = body(name)
    head = data[: int(len(data) * fraction)]
    with OpusPacketizer(fmt) as packetizer:
        early = [p for start in range(0, len(head), 4096) for p in packetizer.feed(head[start : start + 4096])]
    assert early
    assert tuple(early) == packetized(name)[: len(early)]


def test_20ms_ogg_opus_packets_come_out_before_their_page_is_complete() -> None:
    """Encoders write pages of up to a second: waiting for whole pages would delay the first audio that much."""
    data, fmt = body("opus-20")
    headers_end, first_audio_page_end = page_ends(data)[1:3]  # pages: OpusHead, OpusTags, then audio
    with OpusPacketizer(fmt) as packetizer:
        assert packetizer.feed(data[: headers_end + 600]) != []  # the first packets of the first audio page
        assert packetizer.passthrough is True
        packets = packetizer.feed(data[headers_end + 600 : first_audio_page_end])
    assert packets
    assert tuple(packetized("opus-20")).count(packets[0]) >= 1


def page_ends(data: bytes) -> list[int]:
    """Offsets just after each Ogg page."""
    ends, offset = [], 0
    while offset < len(data):
        segments = data[offset + 26]
        offset += 27 + segments + sum(data[offset + 27 : offset + 27 + segments])
        ends.append(offset)
    return ends


def test_switch_to_transcoding_mid_stream_loses_and_repeats_nothing() -> None:
    data, fmt = body("opus-20-then-60")
    source = OggPacketReader().feed(data)[2:]
    switch = next(i for i, p in enumerate(source) if packet_duration_ms(p) != 20)
    with OpusPacketizer(fmt) as packetizer:
        packets = packetizer.feed(data) + packetizer.finish()
        assert packetizer.passthrough is False
    assert packets[:switch] == source[:switch]
    # After the switch the output is the source delayed by exactly the new encoder's lookahead: a lost or
    # repeated packet would shift it by a multiple of 960 samples.
    heard = np.concatenate(decode_packets(packets)).reshape(-1, 2)[:, 0].astype(np.float64)
    original = np.concatenate(decode_packets(source)).reshape(-1, 2)[:, 0].astype(np.float64)
    start = switch * SAMPLES_PER_FRAME
    window = original[start : start + 9600]
    lags = range(-2 * SAMPLES_PER_FRAME, 2 * SAMPLES_PER_FRAME)
    best = max(lags, key=lambda lag: float(np.dot(heard[start + lag : start + lag + len(window)], window)))
    assert best == ENCODER_DELAY
    aligned = heard[start + best : start + best + len(window)]
    assert np.corrcoef(aligned, window)[0, 1] > 0.9


@pytest.mark.parametrize("name", ["opus-40", "opus-60"])
@pytest.mark.parametrize("extra_trim", [0, 2000])
def test_transcoded_opus_honours_pre_skip_and_end_trimming(name: str, extra_trim: int) -> None:
    data = bytearray(body(name)[0])
    last_page = page_ends(bytes(data))[-2]
    granule = struct.unpack_from("<q", data, last_page + 6)[0] - extra_trim
    struct.pack_into("<q", data, last_page + 6, granule)
    struct.pack_into("<I", data, last_page + 22, 0)
    struct.pack_into("<I", data, last_page + 22, ogg_crc(data[last_page:]))
    pre_skip = int.from_bytes(OggPacketReader().feed(bytes(data))[0][10:12], "little")
    # RFC 7845: play granule - pre_skip samples. Out come those plus the new encoder's lookahead, in 20 ms packets.
    expected = -(-(granule - pre_skip + ENCODER_DELAY) // SAMPLES_PER_FRAME)
    assert len(packetize(bytes(data), AudioFormat.OPUS)) == expected


@pytest.mark.parametrize("name", ["wav", "aac", "opus-60", "opus-20-then-60"])
def test_speech_is_recognisable_after_packetizing(name: str) -> None:
    heard = np.concatenate(decode_packets(packetized(name)))
    assert recognize(to_16k_mono(heard), PHRASES) == PHRASE


@pytest.mark.parametrize("fmt", [f for f in AudioFormat if f is not AudioFormat.PCM])
def test_garbage_is_a_decode_error(fmt: AudioFormat) -> None:
    with pytest.raises(AudioDecodeError):
        packetize(b"this is not audio at all, just an error page. " * 100, fmt)


@pytest.mark.parametrize("name", ["opus-20", "opus-60", "wav"])
def test_truncated_body_is_a_decode_error(name: str) -> None:
    data, fmt = body(name)
    with pytest.raises(AudioDecodeError, match="truncated"):
        packetize(data[: len(data) * 2 // 3 + 1], fmt)


def test_corrupt_ogg_is_a_decode_error() -> None:
    data = bytearray(body("opus-20")[0])
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(AudioDecodeError, match="corrupt"):
        packetize(bytes(data), AudioFormat.OPUS)


def test_odd_pcm_is_a_decode_error() -> None:
    with pytest.raises(AudioDecodeError, match="middle of a sample"):
        packetize(b"\x00" * 4801, AudioFormat.PCM)


@pytest.mark.parametrize("fmt", list(AudioFormat))
def test_empty_body_is_a_decode_error(fmt: AudioFormat) -> None:
    with pytest.raises(AudioDecodeError, match="empty"):
        OpusPacketizer(fmt).finish()


def test_ogg_with_headers_but_no_audio_is_a_decode_error() -> None:
    headers = OggPacketReader().feed(body("opus-20")[0])[:2]
    with pytest.raises(AudioDecodeError, match="no audio"):
        packetize(ogg_stream(headers, own_pages=2), AudioFormat.OPUS)


def test_wav_with_trailing_chunks_stops_at_the_data_size() -> None:
    data, fmt = body("wav")
    trailer = b"LIST" + struct.pack("<I", 10) + b"INFOISFT\x00\x00"
    assert tuple(packetize(data + trailer, fmt)) == packetized("wav")


def wav_body(samples: np.ndarray, rate: int, tag: int, *, channels: int = 1, before_data: bytes = b"") -> bytes:
    """A WAV file written by hand, for encodings :mod:`bot.audio.encode` does not produce."""
    bits = 24 if samples.dtype == np.dtype("V3") else samples.dtype.itemsize * 8
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if tag == 0xFFFE:
        pcm_guid = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0x4) + pcm_guid
    data = samples.tobytes()
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def s16_speech() -> tuple[np.ndarray, int]:
    pcm, rate = speech_pcm()
    return np.frombuffer(pcm, "<i2").astype(np.int64), rate


def as_s24(samples: np.ndarray) -> np.ndarray:
    return (samples << 8).astype("<i4").view("u1").reshape(-1, 4)[:, :3].copy().view("V3").ravel()


@pytest.mark.parametrize(
    ("encoding", "tag"),
    [("s24", 1), ("s32", 1), ("f32", 3), ("s16-extensible", 0xFFFE), ("s16-list-chunk-first", 1)],
)
def test_lossless_wav_encodings_give_the_same_packets_as_s16(encoding: str, tag: int) -> None:
    samples, rate = s16_speech()
    converted = {
        "s24": lambda: as_s24(samples),
        "s32": lambda: (samples << 16).astype("<i4"),
        "f32": lambda: (samples / 32768).astype("<f4"),
    }.get(encoding, lambda: samples.astype("<i2"))()
    odd_chunk = b"LIST" + struct.pack("<I", 5) + b"INFO!" + b"\x00"  # odd size: one pad byte follows
    data = wav_body(converted, rate, tag, before_data=odd_chunk if encoding.endswith("list-chunk-first") else b"")
    assert tuple(packetize(data, AudioFormat.WAV, 333)) == packetized("wav")


@pytest.mark.parametrize("encoding", ["u8", "f64", "s16-stereo"])
def test_other_wav_encodings_are_still_the_phrase(encoding: str) -> None:
    # f64 takes another (double precision) resampling path, so its packets differ slightly from s16's.
    samples, rate = s16_speech()
    if encoding == "u8":
        data = wav_body(((samples >> 8) + 128).astype("u1"), rate, 1)
    elif encoding == "f64":
        data = wav_body((samples / 32768).astype("<f8"), rate, 3)
    else:
        data = wav_body(np.repeat(samples, 2).astype("<i2"), rate, 1, channels=2)
    packets = packetize(data, AudioFormat.WAV, 4096)
    assert len(packets) * SAMPLES_PER_FRAME / SAMPLE_RATE == pytest.approx(len(samples) / rate, abs=DURATION_TOLERANCE)
    assert recognize(to_16k_mono(np.concatenate(decode_packets(packets))), PHRASES) == PHRASE


def test_unsupported_wav_encoding_is_a_decode_error() -> None:
    samples, rate = s16_speech()
    with pytest.raises(AudioDecodeError, match="unsupported"):
        packetize(wav_body((samples >> 8).astype("u1"), rate, 7), AudioFormat.WAV)  # 7: mu-law


def test_closing_early_releases_the_decoder_thread() -> None:
    data, fmt = body("flac")
    packetizer = OpusPacketizer(fmt)
    packetizer.feed(data[:1000])
    packetizer.close()
    assert decoder_threads_end("decode-flac")
    with pytest.raises(RuntimeError):
        packetizer.feed(data[1000:])


class ChunkedStream:
    """A SpeechStream that pauses after ``pause_at`` bytes until ``resume`` is set."""

    def __init__(self, data: bytes, fmt: AudioFormat, pause_at: int, resume: asyncio.Event) -> None:
        self.format = fmt
        self._data = data
        self._pause_at = pause_at
        self._resume = resume
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._data), 1024):
            if start == self._pause_at:
                await self._resume.wait()
            yield self._data[start : start + 1024]

    async def aclose(self) -> None:
        self.closed = True


async def test_async_packets_flow_while_the_stream_is_still_open() -> None:
    data, fmt = body("wav")
    resume = asyncio.Event()
    stream = ChunkedStream(data, fmt, pause_at=len(data) // 3 // 1024 * 1024, resume=resume)
    packets: list[bytes] = []
    async with asyncio.timeout(10):
        async for batch in opus_packet_batches(stream):
            assert batch, "batches are never empty"
            packets.extend(batch)
            resume.set()  # the body only continues once a packet has come out
    assert tuple(packets) == packetized("wav")
    assert stream.closed


async def test_stopping_early_closes_the_stream_and_the_decoder_thread() -> None:
    data, fmt = body("aac")
    stream = ChunkedStream(data, fmt, pause_at=-1, resume=asyncio.Event())
    async with contextlib.aclosing(opus_packet_batches(stream)) as packets:
        async for _ in packets:
            break
    assert stream.closed
    assert await asyncio.to_thread(decoder_threads_end, "decode-aac")


def decoder_threads_end(name: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(t.name == name for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def test_async_decode_errors_close_the_stream() -> None:
    stream = ChunkedStream(b"RIFF" + b"\x00" * 3000, AudioFormat.WAV, pause_at=-1, resume=asyncio.Event())
    with pytest.raises(AudioDecodeError):
        async for _ in opus_packet_batches(stream):
            pass
    assert stream.closed
