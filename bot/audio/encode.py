"""Encode mono s16le PCM into every requestable format, in process with PyAV (no ffmpeg binary).

The output matches what the real speech API sends: ``opus`` is an Ogg Opus file with 20 ms packets at 48 kHz
(Discord sends one packet per 20 ms, so these can be stream-copied), ``pcm`` is headerless 24 kHz s16le mono,
``aac`` is ADTS (so :func:`~bot.audio.formats.sniff` recognises it), ``wav`` and ``flac`` keep the source rate.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol, cast

import av
import numpy as np

from bot.audio.formats import PCM_SAMPLE_RATE, AudioFormat

#: Formats whose bytes can be handed out while encoding goes on (no header rewritten at the end).
STREAMABLE_FORMATS: tuple[AudioFormat, ...] = (AudioFormat.OPUS, AudioFormat.AAC, AudioFormat.PCM)

#: Ample for one synthetic voice in mono (Discord itself sends 64 kb/s stereo).
OPUS_BIT_RATE = 48_000
AAC_BIT_RATE = 64_000
#: The API's native rate (its pcm is 24 kHz too).
AAC_SAMPLE_RATE = 24_000

# Small muxer I/O buffer, so an incremental encoder hands out Ogg pages as soon as they are complete instead
# of holding ~5 s of Opus in PyAV's default 32 KiB buffer.
_IO_BUFFER_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Profile:
    container: str
    codec: str
    sample_format: str
    rate: int | None  # None keeps the source rate
    bit_rate: int | None = None
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)


_PROFILES: dict[AudioFormat, _Profile] = {
    # 20 ms packets are what Discord sends; "voip" tunes libopus for speech intelligibility.
    AudioFormat.OPUS: _Profile(
        "ogg", "libopus", "s16", 48_000, OPUS_BIT_RATE, {"frame_duration": "20", "application": "voip"}
    ),
    AudioFormat.WAV: _Profile("wav", "pcm_s16le", "s16", None),
    AudioFormat.FLAC: _Profile("flac", "flac", "s16", None),
    AudioFormat.AAC: _Profile("adts", "aac", "fltp", AAC_SAMPLE_RATE, AAC_BIT_RATE),
}


#: Ogg Opus for audio played while it is being made (the Realtime engine's speech, 24 kHz). Every 20 ms packet
#: gets its own Ogg page, flushed at once, so a voice channel can start with the first packet (the default
#: one-second pages held the first ~0.7 s back); CELT ("audio") at the source's rate and complexity 5, like the
#: voice transcoder: measured 4.5 ms of CPU per second of speech against 23 for the profile above (SILK at 48 kHz,
#: complexity 10). The pages cost ~1.4 KiB/s more.
_LIVE_OPUS = _Profile(
    "ogg", "libopus", "s16", None, OPUS_BIT_RATE,
    {"frame_duration": "20", "application": "audio", "compression_level": "5"},
    {"page_duration": "20000", "flush_packets": "1"},
)
#: The input rates libopus takes; another source rate is resampled to 48 kHz.
_OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)


def encode_pcm(pcm: bytes, sample_rate: int, fmt: AudioFormat) -> bytes:
    """Encode mono s16le ``pcm`` at ``sample_rate`` into a whole ``fmt`` file (``pcm``: 24 kHz raw)."""
    fmt = AudioFormat(fmt)
    encoder = _RawPcmEncoder(sample_rate) if fmt is AudioFormat.PCM else _ContainerEncoder(fmt, sample_rate)
    return encoder.feed(pcm) + encoder.finish()


class StreamEncoder:
    """Incremental encoder for :data:`STREAMABLE_FORMATS`: feed PCM as it is synthesized, send bytes at once.

    ``feed`` returns whatever output is complete so far (possibly nothing), ``finish`` the rest. The
    concatenation of everything returned equals ``encode_pcm`` of the concatenated input.
    """

    def __init__(self, fmt: AudioFormat, sample_rate: int, *, live: bool = False) -> None:
        """``live``: Ogg Opus is played while it is made (see ``_LIVE_OPUS``); other formats ignore it."""
        fmt = AudioFormat(fmt)
        if fmt not in STREAMABLE_FORMATS:
            raise ValueError(f"{fmt} cannot be streamed: its header is rewritten at the end")
        self.format = fmt
        profile = _LIVE_OPUS if live and fmt is AudioFormat.OPUS else None
        self._encoder: _Encoder = (
            _RawPcmEncoder(sample_rate)
            if fmt is AudioFormat.PCM
            else _ContainerEncoder(fmt, sample_rate, stream=True, profile=profile)
        )

    def feed(self, pcm: bytes) -> bytes:
        return self._encoder.feed(pcm)

    def finish(self) -> bytes:
        return self._encoder.finish()


class _Encoder(Protocol):
    def feed(self, pcm: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _RawPcmEncoder:
    """Resample to the contract's 24 kHz s16le mono, without a header."""

    def __init__(self, sample_rate: int) -> None:
        self._sample_rate = sample_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_SAMPLE_RATE)
        self._samples = 0

    def feed(self, pcm: bytes) -> bytes:
        if not pcm:
            return b""
        frame = s16_frame(pcm, self._sample_rate, self._samples)
        self._samples += frame.samples
        return b"".join(map(s16_bytes, self._resampler.resample(frame)))

    def finish(self) -> bytes:
        return b"".join(map(s16_bytes, self._resampler.resample(None)))


class _ContainerEncoder:
    """One PyAV output container; the codec context resamples and re-frames (960 / 1024 samples) itself.

    Whole files go to a seekable buffer so wav/flac headers get their final sizes; ``stream=True`` writes to a
    non-seekable sink whose bytes are handed out as soon as the muxer writes them.
    """

    def __init__(
        self, fmt: AudioFormat, sample_rate: int, *, stream: bool = False, profile: _Profile | None = None
    ) -> None:
        profile = profile or _PROFILES.get(fmt)
        if profile is None:
            raise ValueError(f"cannot encode {fmt}")
        self._sample_rate = sample_rate
        self._samples = 0
        self._sink = _Sink() if stream else None
        self._whole = None if stream else io.BytesIO()
        self._box = av.open(
            self._sink if self._sink is not None else self._whole,
            "w",
            format=profile.container,
            # fixed Ogg serial number: same input, same bytes
            container_options={"fflags": "+bitexact", **profile.container_options},
            buffer_size=_IO_BUFFER_SIZE,
        )
        try:
            rate = profile.rate or sample_rate
            if profile.codec == "libopus" and rate not in _OPUS_RATES:
                rate = 48_000
            self._stream = cast(  # an audio codec, so an audio stream
                av.AudioStream,
                self._box.add_stream(profile.codec, rate=rate, layout="mono", format=profile.sample_format),
            )
            if profile.bit_rate:
                self._stream.bit_rate = profile.bit_rate
            self._stream.codec_context.options = dict(profile.options)
            self._box.start_encoding()  # write the header now: empty input still gives a valid file
        except BaseException:
            self._box.close()
            raise

    def feed(self, pcm: bytes) -> bytes:
        if pcm:
            frame = s16_frame(pcm, self._sample_rate, self._samples)
            self._samples += frame.samples
            self._box.mux(self._stream.encode(frame))
        return self._take()

    def finish(self) -> bytes:
        self._box.mux(self._stream.encode(None))
        self._box.close()
        return self._whole.getvalue() if self._whole is not None else self._take()

    def _take(self) -> bytes:
        return self._sink.take() if self._sink is not None else b""


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file that collects what the muxer writes until it is taken."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    # io.RawIOBase.write takes any buffer; PyAV only ever hands this sink bytes
    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def s16_frame(pcm: bytes, sample_rate: int, pts: int = 0) -> av.AudioFrame:
    """Wrap mono s16le bytes in a PyAV frame (``pts`` in samples) for a codec context or resampler."""
    if len(pcm) % 2:
        raise ValueError("s16le PCM must have an even number of bytes")
    frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.time_base = Fraction(1, sample_rate)
    frame.pts = pts
    return frame


def s16_bytes(frame: av.AudioFrame) -> bytes:
    """The interleaved samples of a packed s16 frame (its plane may be padded past the last sample)."""
    return bytes(frame.planes[0])[: frame.samples * 2 * len(frame.layout.channels)]
