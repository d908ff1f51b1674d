"""In-process encoding to every requestable format, checked by sniffing and decoding the result with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from bot.audio.decode import AudioDecodeError, decode_to_pcm, duration_seconds
from bot.audio.encode import AAC_SAMPLE_RATE, STREAMABLE_FORMATS, StreamEncoder, encode_pcm
from bot.audio.formats import PCM_SAMPLE_RATE, REQUESTABLE_FORMATS, AudioFormat, sniff
from bot.audio.opus import packet_duration_ms

SOURCE_RATE = 22_050  # piper's rate: every format but wav/flac has to resample
SOURCE_SECONDS = 1.2345  # not a whole number of Opus (20 ms) or AAC (1024-sample) frames
TONE_HZ = 440.0
DURATION_TOLERANCE = 0.030
# ADTS cannot say how many samples to trim, so decoders keep the encoder's 1024 priming samples and the
# padding up to a whole 1024-sample frame.
AAC_MAX_EXTRA = 2 * 1024 / AAC_SAMPLE_RATE


def tone(seconds: float = SOURCE_SECONDS, rate: int = SOURCE_RATE, hz: float = TONE_HZ) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 12_000).astype("<i2").tobytes()


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


SOURCE = tone()


@pytest.fixture(scope="module")
def encoded() -> dict[AudioFormat, bytes]:
    return {fmt: encode_pcm(SOURCE, SOURCE_RATE, fmt) for fmt in REQUESTABLE_FORMATS}


@pytest.mark.parametrize("fmt", [AudioFormat.OPUS, AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.AAC])
def test_containers_are_recognised_by_sniff(encoded: dict[AudioFormat, bytes], fmt: AudioFormat) -> None:
    assert sniff(encoded[fmt]) == fmt


@pytest.mark.parametrize("fmt", [AudioFormat.OPUS, AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.PCM])
def test_decoded_duration_matches_the_source(encoded: dict[AudioFormat, bytes], fmt: AudioFormat) -> None:
    assert duration_seconds(encoded[fmt], fmt) == pytest.approx(SOURCE_SECONDS, abs=DURATION_TOLERANCE)


def test_aac_duration_is_the_source_plus_at_most_priming_and_padding(encoded: dict[AudioFormat, bytes]) -> None:
    extra = duration_seconds(encoded[AudioFormat.AAC], AudioFormat.AAC) - SOURCE_SECONDS
    assert 0 <= extra <= AAC_MAX_EXTRA


@pytest.mark.parametrize("fmt", REQUESTABLE_FORMATS)
def test_the_tone_survives_encoding(encoded: dict[AudioFormat, bytes], fmt: AudioFormat) -> None:
    pcm = decode_to_pcm(encoded[fmt], fmt, rate=16_000)
    assert dominant_hz(pcm, 16_000) == pytest.approx(TONE_HZ, abs=2)


@pytest.mark.parametrize("fmt", [AudioFormat.WAV, AudioFormat.FLAC])
def test_lossless_formats_keep_the_source_rate_and_samples(encoded: dict[AudioFormat, bytes], fmt: AudioFormat) -> None:
    with av.open(io.BytesIO(encoded[fmt])) as container:
        assert container.streams.audio[0].sample_rate == SOURCE_RATE
    assert decode_to_pcm(encoded[fmt], rate=SOURCE_RATE) == SOURCE


def test_pcm_is_headerless_24khz_mono_s16le(encoded: dict[AudioFormat, bytes]) -> None:
    pcm = encoded[AudioFormat.PCM]
    assert sniff(pcm) is None
    assert len(pcm) / 2 == pytest.approx(SOURCE_SECONDS * PCM_SAMPLE_RATE, abs=48)
    # Read as 24 kHz, the tone has its original pitch only if it really was resampled to 24 kHz.
    assert dominant_hz(pcm, PCM_SAMPLE_RATE) == pytest.approx(TONE_HZ, abs=2)


def test_opus_is_48khz_mono_with_20ms_packets(encoded: dict[AudioFormat, bytes]) -> None:
    with av.open(io.BytesIO(encoded[AudioFormat.OPUS])) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.sample_rate, stream.channels) == ("opus", 48_000, 1)
        packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
    assert {packet_duration_ms(packet) for packet in packets} == {20}
    assert len(packets) == pytest.approx(SOURCE_SECONDS / 0.020, abs=2)


def test_aac_is_adts_at_24khz(encoded: dict[AudioFormat, bytes]) -> None:
    with av.open(io.BytesIO(encoded[AudioFormat.AAC]), format="aac") as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.sample_rate, stream.channels) == ("aac", AAC_SAMPLE_RATE, 1)


@pytest.mark.parametrize("fmt", REQUESTABLE_FORMATS)
def test_encoding_is_deterministic(encoded: dict[AudioFormat, bytes], fmt: AudioFormat) -> None:
    assert encode_pcm(SOURCE, SOURCE_RATE, fmt) == encoded[fmt]


@pytest.mark.parametrize("fmt", STREAMABLE_FORMATS)
def test_stream_encoder_output_equals_the_whole_file(encoded: dict[AudioFormat, bytes], fmt: AudioFormat) -> None:
    encoder = StreamEncoder(fmt, SOURCE_RATE)
    step = SOURCE_RATE // 10 * 2  # 100 ms of s16 samples
    parts = [encoder.feed(SOURCE[start : start + step]) for start in range(0, len(SOURCE), step)]
    parts.append(encoder.finish())
    assert b"".join(parts) == encoded[fmt]
    assert parts[0], "the first bytes (header or samples) are available before the input ends"


@pytest.mark.parametrize("fmt", [AudioFormat.WAV, AudioFormat.FLAC])
def test_stream_encoder_refuses_formats_with_trailing_headers(fmt: AudioFormat) -> None:
    with pytest.raises(ValueError):
        StreamEncoder(fmt, SOURCE_RATE)


@pytest.mark.parametrize(
    ("pcm", "fmt"), [(SOURCE, AudioFormat.MP3), (SOURCE[:-1], AudioFormat.WAV), (SOURCE[:-1], AudioFormat.PCM)]
)
def test_encoding_refuses_mp3_and_partial_samples(pcm: bytes, fmt: AudioFormat) -> None:
    with pytest.raises(ValueError):
        encode_pcm(pcm, SOURCE_RATE, fmt)


def test_decode_converts_rate_and_channels(encoded: dict[AudioFormat, bytes]) -> None:
    stereo = decode_to_pcm(encoded[AudioFormat.WAV], rate=48_000, channels=2)
    assert len(stereo) / 4 == pytest.approx(SOURCE_SECONDS * 48_000, abs=48)
    left, right = np.frombuffer(stereo, dtype="<i2").reshape(-1, 2).T
    assert np.array_equal(left, right)


@pytest.mark.parametrize("data", [b"OggS" + bytes(200), b"not audio at all", b""])
def test_decoding_garbage_raises_a_typed_error(data: bytes) -> None:
    with pytest.raises(AudioDecodeError):
        decode_to_pcm(data)


@pytest.mark.parametrize("rate", [24_000, SOURCE_RATE])
def test_live_opus_hands_out_each_packet_at_once_in_20ms_frames(rate: int) -> None:
    """What the Realtime engine plays while it is made: every 100 ms fed gives out whole Ogg pages at once (the
    voice channel starts with the first delta), 20 ms packets, the same tone and duration."""
    source = tone(rate=rate)
    encoder = StreamEncoder(AudioFormat.OPUS, rate, live=True)
    step = rate // 10 * 2
    parts = [encoder.feed(source[start : start + step]) for start in range(0, len(source), step)]
    parts.append(encoder.finish())
    assert all(parts[1:-1]), "every 100 ms fed gives audio out"
    data = b"".join(parts)
    assert sniff(data) is AudioFormat.OPUS
    with av.open(io.BytesIO(data)) as container:
        durations = {packet_duration_ms(bytes(p)) for p in container.demux(audio=0) if p.size}
    assert durations == {20}
    assert duration_seconds(data, AudioFormat.OPUS) == pytest.approx(SOURCE_SECONDS, abs=DURATION_TOLERANCE)
    assert dominant_hz(decode_to_pcm(data, AudioFormat.OPUS, rate=48_000, channels=1), 48_000) == pytest.approx(
        TONE_HZ, abs=5)
