"""An incremental Ogg demuxer (RFC 3533): bytes in as they arrive, whole packets out as soon as their page is.

Speech APIs stream Ogg Opus over chunked HTTP, and chunk boundaries fall anywhere, so the reader keeps the
unfinished page and packet between calls. Every page's CRC is checked: a corrupt body must fail loudly instead
of being sent to a voice channel as noise.
"""

from __future__ import annotations

import struct
import zlib

from bot.audio.decode import AudioDecodeError

_CAPTURE = b"OggS"
# capture pattern, version, header type, granule position, serial number, page sequence, CRC, segment count
_HEADER = struct.Struct("<4sBBqIIIB")
_CRC_OFFSET = 22
_FLAG_CONTINUED = 0x01
_FLAG_BOS = 0x02
_FLAG_EOS = 0x04

# Ogg's CRC-32 is the unreflected polynomial 0x04C11DB7 with no initial or final XOR. zlib's crc32 is the
# reflected form of the same polynomial, so bit-reversing every input byte and the result gives Ogg's CRC at C
# speed. Starting zlib at 0xFFFFFFFF and XORing its output cancels zlib's own initial and final inversions.
_REVERSED_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


class OggError(AudioDecodeError):
    """The body is not a well-formed Ogg stream (bad capture pattern, CRC mismatch, cut short)."""


def ogg_crc(data: bytes | bytearray | memoryview) -> int:
    """The CRC-32 of an Ogg page (its CRC field must be zeroed by the caller)."""
    raw = zlib.crc32(bytes(data).translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


class OggPacketReader:
    """Demux the first logical stream of an Ogg body fed in chunks of any size.

    Pages of other logical streams (chained or multiplexed) are checked and skipped. Not thread-safe: feed it
    from one thread at a time.
    """

    def __init__(self, *, early: bool = False) -> None:
        self._early = early
        self._early_emitted = 0  # packets of the incomplete first page already returned
        self._buffer = bytearray()
        self._serial: int | None = None
        self._partial: bytearray | None = None  # a packet continued on the next page
        self._sequence = -1
        self._ended = False
        #: Granule position of the last page of the stream read so far (-1 before any, or if none is set).
        self.granule_position = -1

    @property
    def ended(self) -> bool:
        """True once the page flagged end-of-stream has been read."""
        return self._ended

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every packet completed by it, in order. Raises :class:`OggError`.

        Packets of a page still arriving are returned as soon as their own bytes are in (``early``), before
        the page's CRC can be checked; a CRC mismatch found when the page completes still raises, so a corrupt
        body fails, only a little later. Encoders write pages of up to a second, so waiting for whole pages
        would delay the first audio by that much.
        """
        self._buffer += data
        packets: list[bytes] = []
        offset = 0
        while (size := self._page_size(offset)) is not None:
            page_packets: list[bytes] = []
            self._read_page(memoryview(self._buffer)[offset : offset + size], page_packets)
            packets += page_packets[self._early_emitted :]
            self._early_emitted = 0
            offset += size
        del self._buffer[:offset]
        if self._early:
            early = self._packets_so_far()
            packets += early[self._early_emitted :]
            self._early_emitted = max(self._early_emitted, len(early))
        return packets

    def _packets_so_far(self) -> list[bytes]:
        """The complete packets of the page at the start of the buffer, while the rest of it is still missing.

        Reads without changing any state: the page is read for real (CRC included) once it is whole.
        """
        buffer = self._buffer
        if len(buffer) < _HEADER.size or buffer[:4] != _CAPTURE:
            return []
        _, _, flags, _, serial, sequence, _, segments = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + segments:
            return []
        ours = serial == self._serial if self._serial is not None else bool(flags & _FLAG_BOS)
        continued_ok = bool(flags & _FLAG_CONTINUED) == (self._partial is not None)
        if not ours or self._ended or sequence != self._sequence + 1 or not continued_ok:
            return []  # not ours, or broken: the whole-page read decides what to do
        packets: list[bytes] = []
        partial = bytearray(self._partial) if self._partial is not None else None
        position = _HEADER.size + segments
        for lace in buffer[_HEADER.size : _HEADER.size + segments]:
            if position + lace > len(buffer):
                break
            partial = (partial or bytearray()) + buffer[position : position + lace]
            position += lace
            if lace < 255:
                packets.append(bytes(partial))
                partial = None
        return packets

    def end(self) -> None:
        """Declare the body finished; raises :class:`OggError` if it stopped inside a page or a packet."""
        if self._buffer:
            raise OggError(f"the Ogg stream is truncated: {len(self._buffer)} bytes of an unfinished page")
        if self._partial is not None:
            raise OggError("the Ogg stream is truncated: its last packet is unfinished")
        if self._serial is None:
            raise OggError("the Ogg stream is empty")

    def _page_size(self, offset: int) -> int | None:
        """Size of the page at ``offset`` if all of it is buffered, else None; checks the capture pattern."""
        available = len(self._buffer) - offset
        if available < 5:
            if self._buffer[offset : offset + 4] != _CAPTURE[:available]:
                raise OggError("not an Ogg stream (bad capture pattern)")
            return None
        if self._buffer[offset : offset + 4] != _CAPTURE:
            raise OggError("not an Ogg stream (bad capture pattern)")
        if self._buffer[offset + 4] != 0:
            raise OggError(f"unsupported Ogg version {self._buffer[offset + 4]}")
        if available < _HEADER.size:
            return None
        segments = self._buffer[offset + _HEADER.size - 1]
        if available < _HEADER.size + segments:
            return None
        lacing = self._buffer[offset + _HEADER.size : offset + _HEADER.size + segments]
        size = _HEADER.size + segments + sum(lacing)
        return size if available >= size else None

    def _read_page(self, page: memoryview, packets: list[bytes]) -> None:
        _, _, flags, granule, serial, sequence, crc, segments = _HEADER.unpack_from(page)
        unsigned = bytearray(page)
        unsigned[_CRC_OFFSET : _CRC_OFFSET + 4] = b"\0\0\0\0"
        if ogg_crc(unsigned) != crc:
            raise OggError("the Ogg stream is corrupt (page CRC mismatch)")
        if self._serial is None:
            if not flags & _FLAG_BOS:
                raise OggError("the Ogg stream does not start with a beginning-of-stream page")
            self._serial = serial
        elif serial != self._serial or self._ended:
            return  # another logical stream: not ours
        if sequence != self._sequence + 1:
            raise OggError(f"the Ogg stream lost pages (page {sequence} after page {self._sequence})")
        self._sequence = sequence
        if bool(flags & _FLAG_CONTINUED) != (self._partial is not None):
            raise OggError("the Ogg stream is corrupt (packet continuation does not match)")
        position = _HEADER.size + segments
        for lace in page[_HEADER.size : _HEADER.size + segments]:
            if self._partial is None:
                self._partial = bytearray()
            self._partial += page[position : position + lace]
            position += lace
            if lace < 255:
                packets.append(bytes(self._partial))
                self._partial = None
        if granule != -1:
            self.granule_position = granule
        if flags & _FLAG_EOS:
            self._ended = True
