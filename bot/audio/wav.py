"""Incremental WAV and raw PCM decoding: bytes in as they arrive, PyAV audio frames out.

WAV bodies are parsed here rather than by FFmpeg because streamed WAV announces sizes of ``0xFFFFFFFF``
(speech-api.md §2.2) and because raw samples need no demuxer thread: the header is read once, and every later
byte is audio that can be framed synchronously.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np

from bot.audio.decode import AudioDecodeError
from bot.audio.formats import PCM_SAMPLE_RATE

#: Samples are handed on in batches of at least this much audio, so 1-byte chunks do not make 1-sample frames.
BATCH_MS = 20

_UNKNOWN_SIZE = 0xFFFFFFFF
_FORMAT_PCM = 1
_FORMAT_FLOAT = 3
_FORMAT_EXTENSIBLE = 0xFFFE
_MAX_FMT_CHUNK = 1024
# PyAV sample format and numpy dtype per (WAVE format tag, bits per sample); 24-bit is widened to s32.
_SAMPLE_FORMATS: dict[tuple[int, int], tuple[str, str]] = {
    (_FORMAT_PCM, 8): ("u8", "u1"),
    (_FORMAT_PCM, 16): ("s16", "<i2"),
    (_FORMAT_PCM, 24): ("s32", "<i4"),
    (_FORMAT_PCM, 32): ("s32", "<i4"),
    (_FORMAT_FLOAT, 32): ("flt", "<f4"),
    (_FORMAT_FLOAT, 64): ("dbl", "<f8"),
}
#: Speech is mono, stereo at most.
_LAYOUTS = {1: "mono", 2: "stereo"}


class PcmDecoder:
    """Interleaved little-endian samples to frames; a sample cut between two chunks waits for the next one."""

    def __init__(self, rate: int = PCM_SAMPLE_RATE, channels: int = 1, bits: int = 16, tag: int = _FORMAT_PCM) -> None:
        try:
            self._format, self._dtype = _SAMPLE_FORMATS[tag, bits]
        except KeyError:
            raise AudioDecodeError(f"unsupported PCM encoding (format {tag:#x}, {bits} bits)") from None
        if channels not in _LAYOUTS or not 0 < rate <= 768_000:
            raise AudioDecodeError(f"unsupported PCM layout ({channels} channels at {rate} Hz)")
        self._rate = rate
        self._channels = channels
        self._sample_bytes = bits // 8
        self._block = self._sample_bytes * channels
        self._batch = max(1, rate * BATCH_MS // 1000) * self._block
        self._pending = bytearray()
        self._pts = 0

    def feed(self, data: bytes) -> list[av.AudioFrame]:
        self._pending += data
        if len(self._pending) < self._batch:
            return []
        return self._take(len(self._pending) - len(self._pending) % self._block)

    def finish(self) -> list[av.AudioFrame]:
        if len(self._pending) % self._block:
            raise AudioDecodeError("the audio ends in the middle of a sample (truncated)")
        return self._take(len(self._pending)) if self._pending else []

    def close(self) -> None:
        """Nothing to release: decoding runs in the caller's thread."""

    def _take(self, size: int) -> list[av.AudioFrame]:
        raw = bytes(self._pending[:size])
        del self._pending[:size]
        if self._sample_bytes == 3:
            bytes3 = np.frombuffer(raw, dtype="u1").reshape(-1, 3).astype("<i4")
            samples = (bytes3[:, 0] << 8) | (bytes3[:, 1] << 16) | (bytes3[:, 2] << 24)
        else:
            samples = np.frombuffer(raw, dtype=self._dtype)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format=self._format, layout=_LAYOUTS[self._channels])
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._pts
        self._pts += frame.samples
        return [frame]


class WavDecoder:
    """A RIFF/WAVE body to frames: reads the ``fmt `` chunk, skips others, frames the ``data`` chunk.

    A data size of ``0xFFFFFFFF`` (streamed WAV) means "until the end of the body"; a real size is trusted, so
    bytes after it (trailing chunks) are ignored and a body that stops short of it is reported as truncated.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._riff_checked = False
        self._pcm: PcmDecoder | None = None
        self._skip = 0  # bytes of an uninteresting chunk still to drop
        self._data_left: int | None = None  # None: unknown (streamed) size
        self._in_data = False

    def feed(self, data: bytes) -> list[av.AudioFrame]:
        if self._in_data:
            return self._feed_samples(data)
        self._buffer += data
        while not self._in_data and self._parse_header_step():
            pass
        if not self._in_data:
            return []
        rest = bytes(self._buffer)
        self._buffer.clear()
        return self._feed_samples(rest)

    def finish(self) -> list[av.AudioFrame]:
        if not self._in_data:
            raise AudioDecodeError("the WAV body ends before its audio data starts (truncated or not WAV)")
        if self._data_left:
            raise AudioDecodeError("the WAV body ends before the end of its audio data (truncated)")
        assert self._pcm is not None
        return self._pcm.finish()

    def close(self) -> None:
        """Nothing to release: decoding runs in the caller's thread."""

    def _feed_samples(self, data: bytes) -> list[av.AudioFrame]:
        assert self._pcm is not None
        if self._data_left is not None:
            data = data[: self._data_left]
            self._data_left -= len(data)
        return self._pcm.feed(data)

    def _parse_header_step(self) -> bool:
        """Consume one header element if it is complete; False when more bytes are needed."""
        buffer = self._buffer
        if not self._riff_checked:
            if len(buffer) < 12:
                return False
            if buffer[:4] != b"RIFF" or buffer[8:12] != b"WAVE":
                raise AudioDecodeError("not a WAV body (no RIFF/WAVE header)")
            del buffer[:12]
            self._riff_checked = True
            return True
        if self._skip:
            dropped = min(self._skip, len(buffer))
            del buffer[:dropped]
            self._skip -= dropped
            return dropped > 0
        if len(buffer) < 8:
            return False
        chunk_id, size = bytes(buffer[:4]), struct.unpack_from("<I", buffer, 4)[0]
        if chunk_id == b"fmt ":
            if size > _MAX_FMT_CHUNK:
                raise AudioDecodeError("the WAV format chunk is corrupt")
            if len(buffer) < 8 + size:
                return False
            self._pcm = _pcm_from_fmt(bytes(buffer[8 : 8 + size]))
            del buffer[: 8 + size]
            self._skip = size & 1
        elif chunk_id == b"data":
            if self._pcm is None:
                raise AudioDecodeError("the WAV body has audio data before its format chunk")
            del buffer[:8]
            self._data_left = None if size == _UNKNOWN_SIZE else size
            self._in_data = True
        else:
            del buffer[:8]
            self._skip = size + (size & 1)
        return True


def _pcm_from_fmt(chunk: bytes) -> PcmDecoder:
    if len(chunk) < 16:
        raise AudioDecodeError("the WAV format chunk is too short")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", chunk)
    if tag == _FORMAT_EXTENSIBLE:
        if len(chunk) < 26:
            raise AudioDecodeError("the WAV extensible format chunk is too short")
        tag = struct.unpack_from("<H", chunk, 24)[0]  # first two bytes of the sub-format GUID
    return PcmDecoder(rate=rate, channels=channels, bits=bits, tag=tag)
