"""Decode any supported body (Ogg Opus, wav, flac, ADTS aac, mp3, raw 24 kHz pcm) to s16le PCM with PyAV.

Used by the tests to check what the encoders and engines produce, and by voice playback to turn bodies that
are not 20 ms Ogg Opus into PCM.
"""

from __future__ import annotations

import io

import av

from bot.audio.encode import s16_bytes, s16_frame
from bot.audio.formats import PCM_SAMPLE_RATE, SNIFF_BYTES, AudioFormat, sniff

#: FFmpeg demuxer names; passing one spares probing and works on non-seekable input.
_DEMUXERS = {
    AudioFormat.OPUS: "ogg",
    AudioFormat.WAV: "wav",
    AudioFormat.FLAC: "flac",
    AudioFormat.AAC: "aac",
    AudioFormat.MP3: "mp3",
}


class AudioDecodeError(ValueError):
    """The bytes are not audio of a supported format, or are corrupt."""


def decode_to_pcm(data: bytes, fmt: AudioFormat | None = None, rate: int = 48_000, channels: int = 1) -> bytes:
    """Decode a whole body to interleaved s16le at ``rate`` Hz with ``channels`` channels.

    ``fmt`` defaults to the sniffed container; pass ``AudioFormat.PCM`` for headerless 24 kHz mono s16le,
    which cannot be sniffed.
    """
    fmt = AudioFormat(fmt) if fmt is not None else _sniff(data)
    resampler = av.AudioResampler(format="s16", layout=_layout(channels), rate=rate)
    parts = [s16_bytes(f) for frame in _decoded_frames(data, fmt) for f in resampler.resample(frame)]
    parts.extend(s16_bytes(f) for f in resampler.resample(None))
    return b"".join(parts)


def duration_seconds(data: bytes, fmt: AudioFormat | None = None) -> float:
    """The playing time of a whole body, counted from decoded samples (container metadata can be absent)."""
    fmt = AudioFormat(fmt) if fmt is not None else _sniff(data)
    if fmt is AudioFormat.PCM:
        return len(data) / 2 / PCM_SAMPLE_RATE
    frames = _decoded_frames(data, fmt)
    return sum(frame.samples for frame in frames) / frames[0].sample_rate if frames else 0.0


def _decoded_frames(data: bytes, fmt: AudioFormat) -> list[av.AudioFrame]:
    if fmt is AudioFormat.PCM:
        if len(data) % 2:
            raise AudioDecodeError("pcm must be s16le: an odd number of bytes")
        return [s16_frame(data, PCM_SAMPLE_RATE)]
    try:
        with av.open(io.BytesIO(data), mode="r", format=_DEMUXERS[fmt]) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"the {fmt} body has no audio stream")
            return list(container.decode(container.streams.audio[0]))
    except av.FFmpegError as exc:
        raise AudioDecodeError(f"cannot decode the {fmt} body: {exc}") from exc


def _sniff(data: bytes) -> AudioFormat:
    fmt = sniff(data[:SNIFF_BYTES])
    if fmt is None:
        raise AudioDecodeError("unrecognised audio container (pass fmt=AudioFormat.PCM for raw pcm)")
    return fmt


def _layout(channels: int) -> str:
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    return "mono" if channels == 1 else "stereo"
