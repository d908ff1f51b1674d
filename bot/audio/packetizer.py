"""Turn a streamed speech body into the 20 ms Opus packets Discord's player sends, as the chunks arrive.

Discord's ``AudioPlayer`` takes one packet every 20 ms and stamps it as 960 samples whatever it holds, so every
packet must be exactly 20 ms (speech-api.md §5.4). Ogg Opus whose packets are already 20 ms is passed through
untouched (no decode, no encode); everything else is decoded and encoded with libopus in process, at the
source's own rate and channel count where libopus takes them. No ffmpeg process is involved.

Switching mid-stream: when an Ogg Opus stream that started with 20 ms packets carries a packet of another
length, the packets already sent stay as they are and transcoding starts at that packet. The decoder first
decodes the last few passed-through packets (output discarded) so its state is continuous, and decoding resumes
exactly at the switch packet: no audio is lost or sent twice. The fresh encoder adds its lookahead (6.5 ms of
near-silence) once, at the switch point.

Layers: :class:`OpusPacketizer` is synchronous (call it from one thread at a time, e.g. a worker thread);
:func:`opus_packet_batches` adapts it to a :class:`~bot.speech.models.SpeechStream` without blocking the event
loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

import av
import numpy as np

from bot.audio.decode import AudioDecodeError
from bot.audio.demux import ThreadedDecoder
from bot.audio.formats import AudioFormat
from bot.audio.ogg import OggPacketReader
from bot.audio.opus import FRAME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME, packet_samples
from bot.audio.wav import PcmDecoder, WavDecoder
from bot.audio.workers import DeadlinePool

if TYPE_CHECKING:
    from bot.speech.models import SpeechStream

__all__ = ["DEFAULT_BIT_RATE", "AudioDecodeError", "OpusPacketizer", "opus_packet_batches"]

#: Discord's default voice channel bitrate. Ample for speech, and for mono speech cheaper to encode than lower
#: rates, at which libopus switches to its costlier SILK/hybrid modes.
DEFAULT_BIT_RATE = 64_000

#: Bytes fed at a time while a stream has less than ``_THIN_LEAD`` seconds of packets ahead of its listener
#: (see :func:`opus_packet_batches`).
_SLICE = 8192
_THIN_LEAD = 0.5
#: How soon a stream's first packet is due once its first bytes are in (the start-up latency it may add).
_START_BUDGET = 0.02

#: libopus complexity for transcoding: ~25% less CPU than its default of 10 with no measurable loss for speech
#: at 64 kb/s, and the lowest that keeps CELT's pitch pre-filter (bench/bench_opus_encoder.py).
_COMPLEXITY = 5
#: The input rates libopus accepts (it always codes at up to 48 kHz internally).
_OPUS_INPUT_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)

#: Passed-through packets decoded (output discarded) to prime the decoder when a stream switches to transcoding.
_WARMUP_PACKETS = 3

#: Every stream's decoding and encoding: one thread per core, the stream closest to running dry first.
_WORKERS = DeadlinePool(name="audio-packetizer")

_DEMUXERS = {AudioFormat.FLAC: "flac", AudioFormat.AAC: "aac", AudioFormat.MP3: "mp3"}


class _FrameDecoder(Protocol):
    """Body bytes in, decoded audio frames (any rate, layout, sample format) out."""

    def feed(self, data: bytes) -> list[av.AudioFrame]: ...

    def finish(self) -> list[av.AudioFrame]: ...

    def close(self) -> None: ...


class _Pipeline(Protocol):
    passthrough: bool | None

    def feed(self, data: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    def close(self) -> None: ...


class OpusPacketizer:
    """One played item: body chunks in, 20 ms Opus packets (48 kHz, raw, no Ogg) out as soon as possible.

    ``feed`` returns the packets its chunk completed (possibly none); ``finish`` returns the tail, the last
    frame padded with silence. Corrupt, truncated or audio-free bodies raise :class:`AudioDecodeError`, whose
    message is short and safe to show. Use as a context manager, or call :meth:`close` when abandoning a body
    early: flac, aac and mp3 are decoded on a worker thread that must be released.
    """

    def __init__(self, fmt: AudioFormat, *, bit_rate: int = DEFAULT_BIT_RATE) -> None:
        self.format = AudioFormat(fmt)
        self._pipeline: _Pipeline = (
            _OggOpusPipeline(bit_rate) if self.format is AudioFormat.OPUS else _TranscodePipeline(self.format, bit_rate)
        )
        self._received = 0
        self._emitted = 0
        self._open = True

    @property
    def passthrough(self) -> bool | None:
        """True while Ogg Opus packets are copied, False once transcoding; None before the first audio packet."""
        return self._pipeline.passthrough

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add the next chunk of the body; return the packets now complete."""
        self._received += len(chunk)
        return self._run(self._pipeline.feed, chunk)

    def finish(self) -> list[bytes]:
        """The body is complete: return the remaining packets and release everything."""
        if self._open and not self._received:
            self.close()
            raise AudioDecodeError(f"the {self.format} body is empty")
        packets = self._run(self._pipeline.finish)
        self.close()
        if not self._emitted:
            raise AudioDecodeError(f"the {self.format} body holds no audio")
        return packets

    def close(self) -> None:
        """Release the decoder (idempotent); later calls to ``feed``/``finish`` fail.

        Safe to call from another thread while ``feed`` runs (a cancelled worker job): it only tells
        the decoder thread to stop, and the running ``feed`` then returns.
        """
        if self._open:
            self._open = False
            self._pipeline.close()

    def __enter__(self) -> OpusPacketizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, step: Callable[..., list[bytes]], *args: bytes) -> list[bytes]:
        if not self._open:
            raise RuntimeError("the packetizer is finished or closed")
        try:
            packets = step(*args)
        except AudioDecodeError:
            self.close()
            raise
        except av.FFmpegError as exc:
            self.close()
            raise AudioDecodeError(f"the {self.format} audio is corrupt") from exc
        self._emitted += len(packets)
        return packets


async def opus_packet_batches(
    stream: SpeechStream, *, bit_rate: int = DEFAULT_BIT_RATE
) -> AsyncIterator[list[bytes]]:
    """Yield the 20 ms Opus packets of ``stream`` while it downloads, in the batches each chunk completes
    (never empty); decoding runs in a worker thread. Batches, not single packets: the consumer hands a whole
    batch to the sender thread at once, which at 100 guilds is most of the event loop's work per packet.

    The stream is closed when the packets run out, fail, or the caller stops iterating.
    """
    packetizer = OpusPacketizer(stream.format, bit_rate=bit_rate)
    first_chunk_at: float | None = None
    first_packet_at: float | None = None
    produced = 0

    def deadline() -> float:
        if first_packet_at is None:  # a listener is waiting for the start
            return (first_chunk_at or time.monotonic()) + _START_BUDGET
        return first_packet_at + produced * FRAME_MS / 1000  # it runs dry then, if it plays from its first packet

    try:
        async for chunk in stream:
            first_chunk_at = first_chunk_at or time.monotonic()
            start = 0
            while start < len(chunk):
                # While the stream has little audio ahead, it is fed in small slices: transcoding a whole 20 KiB
                # chunk of wav takes a while, and meanwhile neither this stream (its start) nor a more urgent one
                # (its turn on the workers) gets a packet. With a lead, whole chunks cost less.
                due = deadline()
                end = start + _SLICE if due - time.monotonic() < _THIN_LEAD else len(chunk)
                if packets := await _WORKERS.run(due, packetizer.feed, chunk[start:end]):
                    first_packet_at = first_packet_at or time.monotonic()
                    produced += len(packets)
                    yield packets
                start = end
        if packets := await _WORKERS.run(deadline(), packetizer.finish):
            yield packets
    finally:
        packetizer.close()
        await stream.aclose()


class _OpusEncoder:
    """PCM frames of any rate, layout and sample format to 20 ms Opus packets.

    The encoder opens on the first frame at the smallest rate libopus takes that keeps the source's bandwidth
    (24 kHz for the API's 24 kHz speech, 48 kHz for 44.1 kHz music) and in mono for a mono source: the
    packets still play as 48 kHz stereo everywhere (any Opus decoder takes mono packets in a stereo stream,
    RFC 7587), and skipping the resampling to 48 kHz stereo halves the encoding cost. PyAV's codec context
    resamples and re-frames to 20 ms by itself.
    """

    def __init__(self, bit_rate: int) -> None:
        self._bit_rate = bit_rate
        self._context: av.AudioCodecContext | None = None

    def encode(self, frames: list[av.AudioFrame]) -> list[bytes]:
        packets: list[bytes] = []
        for frame in frames:
            context = self._context or self._open(frame)
            frame.pts = None  # sources number their frames differently; the encoder only needs the order
            packets.extend(bytes(packet) for packet in context.encode(frame))
        return packets

    def flush(self) -> list[bytes]:
        """Encode the buffered tail (libopus pads the last frame with silence) and the lookahead."""
        if self._context is None:
            return []
        return [bytes(packet) for packet in self._context.encode(None)]

    def _open(self, first: av.AudioFrame) -> av.AudioCodecContext:
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = next(rate for rate in _OPUS_INPUT_RATES if rate >= min(first.sample_rate, SAMPLE_RATE))
        context.layout = "mono" if len(first.layout.channels) == 1 else "stereo"
        context.format = "s16"
        context.bit_rate = self._bit_rate
        # "audio": CELT at this bit rate, cheaper than the SILK/hybrid modes "voip" picks for speech.
        context.options = {"frame_duration": "20", "application": "audio", "compression_level": str(_COMPLEXITY)}
        self._context = context
        return context



class _TranscodePipeline:
    """Anything but Ogg Opus: decode, then encode."""

    passthrough: bool | None = False

    def __init__(self, fmt: AudioFormat, bit_rate: int) -> None:
        self._decoder = _frame_decoder(fmt)
        self._encoder = _OpusEncoder(bit_rate)

    def feed(self, data: bytes) -> list[bytes]:
        return self._encoder.encode(self._decoder.feed(data))

    def finish(self) -> list[bytes]:
        return self._encoder.encode(self._decoder.finish()) + self._encoder.flush()

    def close(self) -> None:
        self._decoder.close()


def _frame_decoder(fmt: AudioFormat) -> _FrameDecoder:
    if fmt is AudioFormat.PCM:
        return PcmDecoder()
    if fmt is AudioFormat.WAV:
        return WavDecoder()
    return ThreadedDecoder(_DEMUXERS[fmt])


class _OggOpusPipeline:
    """Ogg Opus: copy 20 ms packets; decode and re-encode from the first packet of any other length.

    Transcoded audio honours the stream's pre-skip and end trimming (RFC 7845 §4.2, §4.4); to trim the end, the
    last decoded packet is held back until the next one arrives or the body ends.
    """

    def __init__(self, bit_rate: int) -> None:
        self._reader = OggPacketReader(early=True)
        self._bit_rate = bit_rate
        self._headers_left = 2
        self._pre_skip = 0
        self._channels = 2
        self.passthrough: bool | None = None
        self._recent: deque[bytes] = deque(maxlen=_WARMUP_PACKETS)
        self._position = 0  # 48 kHz samples of audio packets read so far
        self._decoder: av.AudioCodecContext | None = None
        self._encoder: _OpusEncoder | None = None
        self._held: tuple[int, list[av.AudioFrame]] | None = None  # last decoded packet: start, frames

    def feed(self, data: bytes) -> list[bytes]:
        return [out for packet in self._reader.feed(data) for out in self._on_packet(packet)]

    def finish(self) -> list[bytes]:
        self._reader.end()
        if self._headers_left:
            raise AudioDecodeError("the Ogg body has no Opus headers")
        if self._encoder is None:
            return []
        granule = self._reader.granule_position
        end = granule if self._reader.ended and 0 <= granule < self._position else self._position
        return self._release(end) + self._encoder.flush()

    def close(self) -> None:
        """Nothing to release: decoding runs in the caller's thread."""

    def _on_packet(self, packet: bytes) -> list[bytes]:
        if self._headers_left:
            self._read_header(packet)
            return []
        try:
            samples = packet_samples(packet)
        except ValueError as exc:
            raise AudioDecodeError(f"the Opus audio is corrupt ({exc})") from None
        start = self._position
        self._position += samples
        if self.passthrough is None:
            self.passthrough = samples == SAMPLES_PER_FRAME
        if self.passthrough:
            if samples == SAMPLES_PER_FRAME:
                self._recent.append(packet)
                return [packet]
            self.passthrough = False
        decoder = self._decoder or self._start_transcoding()
        packets = self._release(start)
        self._held = (start, decoder.decode(av.Packet(packet)))
        return packets

    def _read_header(self, packet: bytes) -> None:
        if self._headers_left == 2:
            self._pre_skip, self._channels = _parse_opus_head(packet)
        elif not packet.startswith(b"OpusTags"):
            raise AudioDecodeError("the Ogg Opus body has no OpusTags header")
        self._headers_left -= 1

    def _start_transcoding(self) -> av.AudioCodecContext:
        decoder = av.CodecContext.create("libopus", "r")
        decoder.sample_rate = SAMPLE_RATE
        decoder.layout = "mono" if self._channels == 1 else "stereo"  # the encoder follows: mono stays mono
        for packet in self._recent:
            decoder.decode(av.Packet(packet))
        self._decoder = decoder
        self._encoder = _OpusEncoder(self._bit_rate)
        return decoder

    def _release(self, end: int) -> list[bytes]:
        """Encode the held packet's samples that lie after the pre-skip and before ``end``."""
        if self._held is None:
            return []
        assert self._encoder is not None
        start, frames = self._held
        self._held = None
        pieces = []
        for frame in frames:
            piece = _slice(frame, self._pre_skip - start, end - start)
            if piece is not None:
                pieces.append(piece)
            start += frame.samples
        return self._encoder.encode(pieces)


def _parse_opus_head(packet: bytes) -> tuple[int, int]:
    """Validate an OpusHead packet (RFC 7845 §5.1) and return its pre-skip and channel count."""
    if not packet.startswith(b"OpusHead") or len(packet) < 19:
        raise AudioDecodeError("the Ogg body is not Opus (no OpusHead header)")
    version, channels, pre_skip = packet[8], packet[9], int.from_bytes(packet[10:12], "little")
    mapping = packet[18]
    if version >> 4 != 0:
        raise AudioDecodeError(f"unsupported Ogg Opus version {version}")
    if mapping != 0 or channels not in (1, 2):
        raise AudioDecodeError(f"unsupported Opus channel mapping ({channels} channels, family {mapping})")
    return pre_skip, channels


def _slice(frame: av.AudioFrame, start: int, stop: int) -> av.AudioFrame | None:
    """Samples ``[start, stop)`` of ``frame`` (clamped), or None if that is empty."""
    start, stop = max(start, 0), min(stop, frame.samples)
    if start == 0 and stop == frame.samples:
        return frame
    if stop <= start:
        return None
    step = 1 if frame.format.is_planar else len(frame.layout.channels)
    array = np.ascontiguousarray(frame.to_ndarray()[:, start * step : stop * step])
    # the array has the frame's own sample format, so one of the dtypes from_ndarray takes
    piece = av.AudioFrame.from_ndarray(array, format=frame.format.name, layout=frame.layout.name)  # type: ignore[arg-type]
    piece.sample_rate = frame.sample_rate
    return piece
