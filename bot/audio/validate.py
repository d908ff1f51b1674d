"""Is a whole body intact audio? Checked before it is uploaded, cached or played from the cache, so a body that
starts like audio and continues with garbage (a proxy's error page glued on, a cut connection) never reaches a
member as a file.

What can be checked depends on the format:

* Ogg Opus: every page's CRC-32, Opus's two headers first, and every packet framed as RFC 6716 requires (the
  framing checks a decoder makes, without decoding: the voice path sends these packets as they are);
* FLAC: frame CRCs (frames that fail are dropped by the decoder, so the decoded sample count must match the
  one the stream header declares);
* ADTS AAC and MP3: decoded frame by frame, and any frame the decoder rejects fails the body;
* WAV and raw PCM carry no checksum: only their structure (header, declared sizes, whole samples).
"""

from __future__ import annotations

import io

import av

from bot.audio.decode import AudioDecodeError
from bot.audio.formats import AudioFormat
from bot.audio.ogg import OggPacketReader
from bot.audio.opus import check_packet
from bot.audio.wav import WavDecoder

_DEMUXERS = {AudioFormat.FLAC: "flac", AudioFormat.AAC: "aac", AudioFormat.MP3: "mp3"}
#: Make FFmpeg's decoders check every CRC they can and fail on a damaged frame instead of concealing it.
_STRICT = {"err_detect": "crccheck+bitstream+buffer+explode"}


def check_audio(data: bytes, fmt: AudioFormat) -> None:
    """Raise :class:`AudioDecodeError` (saying what is wrong) unless ``data`` is a whole, decodable ``fmt`` body."""
    if not data:
        raise AudioDecodeError("the body is empty")
    if fmt is AudioFormat.PCM:
        if len(data) % 2:
            raise AudioDecodeError("raw pcm must be whole 16-bit samples: the body has an odd number of bytes")
        return
    if fmt is AudioFormat.WAV:
        decoder = WavDecoder()
        frames = decoder.feed(data)
        frames += decoder.finish()
        if not frames:
            raise AudioDecodeError("the WAV body has no audio samples")
        return
    if fmt is AudioFormat.OPUS:
        _check_ogg_opus(data)
        return
    _decode_strictly(data, fmt)


def _check_ogg_opus(data: bytes) -> None:
    reader = OggPacketReader()
    packets = reader.feed(data)  # every page's CRC
    reader.end()
    if len(packets) < 3 or not packets[0].startswith(b"OpusHead") or not packets[1].startswith(b"OpusTags"):
        raise AudioDecodeError("the Ogg body is not Opus audio (no OpusHead and OpusTags headers, or no audio)")
    for index, packet in enumerate(packets[2:], start=1):
        try:
            check_packet(packet)
        except ValueError as exc:
            raise AudioDecodeError(f"Opus packet {index} is malformed: {exc}") from None


def _decode_strictly(data: bytes, fmt: AudioFormat) -> None:
    try:
        with av.open(io.BytesIO(data), mode="r", format=_DEMUXERS[fmt]) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"the {fmt} body has no audio stream")
            stream = container.streams.audio[0]
            stream.codec_context.options = _STRICT
            samples = sum(frame.samples for frame in container.decode(stream))
            declared = stream.duration if fmt is AudioFormat.FLAC else None  # STREAMINFO's total, in samples
    except av.FFmpegError as exc:
        raise AudioDecodeError(f"the {fmt} body does not decode: {exc}") from None
    if samples == 0:
        raise AudioDecodeError(f"the {fmt} body has no audio samples")
    if declared and samples != declared:
        raise AudioDecodeError(f"the {fmt} body decodes to {samples} samples where its header says {declared}")
