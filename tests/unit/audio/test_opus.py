"""Opus packet facts from the TOC byte, checked against packets libopus really produces."""

from __future__ import annotations

import av
import numpy as np
import pytest

from bot.audio.opus import (
    FRAME_MS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    SILENCE_FRAME,
    is_header_packet,
    packet_duration_ms,
    packet_samples,
)


def libopus_packets(frame_duration: str, application: str = "audio", bit_rate: int = 64_000) -> list[bytes]:
    """Half a second of a chirp encoded by libopus with a fixed frame duration."""
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    pcm = (np.sin(2 * np.pi * (200 + 800 * t) * t) * 10_000).astype("<i2")
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bit_rate
    encoder.options = {"frame_duration": frame_duration, "application": application}
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    return [bytes(p) for p in encoder.encode(frame) + encoder.encode(None)]


def test_constants_match_discords_frame() -> None:
    assert (FRAME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME) == (20, 48_000, 960)


@pytest.mark.parametrize("frame_duration", ["2.5", "5", "10", "20", "40", "60"])
@pytest.mark.parametrize("application", ["audio", "voip", "lowdelay"])
def test_duration_of_real_libopus_packets(frame_duration: str, application: str) -> None:
    packets = libopus_packets(frame_duration, application)
    assert {packet_duration_ms(p) for p in packets} == {float(frame_duration)}
    assert {packet_samples(p) for p in packets} == {round(float(frame_duration) * 48)}


@pytest.mark.parametrize("bit_rate", [6_000, 24_000])
def test_duration_of_silk_and_hybrid_packets(bit_rate: int) -> None:
    # Low bitrates in voip mode make libopus choose SILK or hybrid configurations (TOC config < 16).
    packets = libopus_packets("20", "voip", bit_rate)
    assert any(p[0] >> 3 < 16 for p in packets)
    assert {packet_duration_ms(p) for p in packets} == {20}


@pytest.mark.parametrize(
    ("packet", "ms"),
    [
        (bytes([0 << 3 | 0]), 10),  # SILK NB 10 ms, one frame
        (bytes([3 << 3 | 0]), 60),  # SILK NB 60 ms
        (bytes([9 << 3 | 1]), 40),  # SILK WB 20 ms, two equal frames
        (bytes([11 << 3 | 2, 1, 2]), 120),  # SILK WB 60 ms, two frames of different sizes
        (bytes([12 << 3 | 0]), 10),  # hybrid SWB 10 ms
        (bytes([15 << 3 | 0]), 20),  # hybrid FB 20 ms
        (bytes([16 << 3 | 0]), 2.5),  # CELT NB 2.5 ms
        (bytes([28 << 3 | 3, 8]), 20),  # CELT FB 2.5 ms x 8 frames (code 3)
        (bytes([29 << 3 | 3, 0x80 | 4]), 20),  # CELT FB 5 ms x 4, VBR flag set in the count byte
        (bytes([31 << 3 | 3, 6]), 120),  # CELT FB 20 ms x 6
        (SILENCE_FRAME, 20),
    ],
)
def test_duration_from_toc_byte(packet: bytes, ms: float) -> None:
    assert packet_duration_ms(packet) == ms


@pytest.mark.parametrize("packet", [b"", bytes([31 << 3 | 3]), bytes([31 << 3 | 3, 0])])
def test_malformed_packets_are_rejected(packet: bytes) -> None:
    with pytest.raises(ValueError):
        packet_duration_ms(packet)


def test_silence_frame_decodes_to_20ms_of_silence() -> None:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "stereo"
    frames = decoder.decode(av.Packet(SILENCE_FRAME))
    assert sum(f.samples for f in frames) == SAMPLES_PER_FRAME
    assert not np.any(np.concatenate([f.to_ndarray() for f in frames], axis=1))


def test_header_packets_are_recognised() -> None:
    assert is_header_packet(b"OpusHead\x01\x02\x38\x01")
    assert is_header_packet(b"OpusTags\x00\x00")
    assert not is_header_packet(SILENCE_FRAME)
    assert not any(is_header_packet(p) for p in libopus_packets("20"))
