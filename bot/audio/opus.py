"""Facts about single Opus packets (RFC 6716) that decide whether a packet can be sent to Discord as it is.

Discord's player sends one packet every 20 ms and advances the RTP clock by 960 samples whatever the packet
holds, so only packets of exactly 20 ms play at the right speed. Their length is written in the TOC byte.
"""

from __future__ import annotations

#: Opus always runs at 48 kHz; Discord sends one 20 ms packet (960 samples per channel) per tick.
SAMPLE_RATE = 48_000
FRAME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000

#: A 20 ms CELT silence packet (config 31, one frame); Discord's own "end of speech" marker.
SILENCE_FRAME = b"\xf8\xff\xfe"

_HEADER_MAGICS = (b"OpusHead", b"OpusTags")

# Frame length in ms for each TOC configuration (RFC 6716 §3.1, table 2): SILK 0-11, hybrid 12-15, CELT 16-31.
_FRAME_MS: tuple[float, ...] = (
    (10, 20, 40, 60) * 3  # SILK NB, MB, WB
    + (10, 20) * 2  # hybrid SWB, FB
    + (2.5, 5, 10, 20) * 4  # CELT NB, WB, SWB, FB
)


def packet_duration_ms(packet: bytes) -> float:
    """Audio length of one Opus packet in ms, from its TOC byte (and frame-count byte for code 3).

    Raises ValueError for a packet too short to carry the counts it announces.
    """
    if not packet:
        raise ValueError("empty Opus packet")
    toc = packet[0]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise ValueError("Opus code-3 packet without its frame-count byte")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise ValueError("Opus code-3 packet with zero frames")
    return _FRAME_MS[toc >> 3] * frames


def packet_samples(packet: bytes) -> int:
    """Samples per channel at 48 kHz in one Opus packet (``packet_duration_ms`` as an exact integer)."""
    return round(packet_duration_ms(packet) * SAMPLE_RATE / 1000)


def is_header_packet(packet: bytes) -> bool:
    """True for the Ogg Opus identification and comment headers, which are not audio (RFC 7845 §5)."""
    return packet.startswith(_HEADER_MAGICS)


MAX_FRAME_BYTES = 1275
MAX_PACKET_MS = 120


def check_packet(packet: bytes) -> None:
    """Raise ValueError unless ``packet`` is a well-formed Opus packet (RFC 6716 §3.4, requirements R1–R7):
    the framing every decoder checks before it decodes, at a fraction of a decode's cost."""
    duration = packet_duration_ms(packet)  # R1 (not empty), R5's zero frames
    if duration > MAX_PACKET_MS:
        raise ValueError(f"Opus packet of {duration:g} ms (at most {MAX_PACKET_MS})")  # R5
    code, body = packet[0] & 3, len(packet) - 1
    if code == 0:
        sizes = [body]
    elif code == 1:
        if body % 2:
            raise ValueError("Opus code-1 packet with an odd payload")  # R3
        sizes = [body // 2] * 2
    elif code == 2:
        first, used = _frame_length(packet, 1)
        if first > body - used:
            raise ValueError("Opus code-2 packet shorter than its first frame")  # R4
        sizes = [first, body - used - first]
    else:
        sizes = _code3_sizes(packet)
    if any(size > MAX_FRAME_BYTES for size in sizes):
        raise ValueError(f"Opus frame over {MAX_FRAME_BYTES} bytes")  # R2


def _frame_length(packet: bytes, offset: int) -> tuple[int, int]:
    """A frame length coded in one or two bytes at ``offset`` (§3.2.1), and how many bytes it used."""
    if offset >= len(packet):
        raise ValueError("Opus packet cut inside a frame length")
    if packet[offset] < 252:
        return packet[offset], 1
    if offset + 1 >= len(packet):
        raise ValueError("Opus packet cut inside a frame length")
    return packet[offset] + 4 * packet[offset + 1], 2


def _code3_sizes(packet: bytes) -> list[int]:
    count_byte = packet[1]
    frames, vbr, padded = count_byte & 0x3F, bool(count_byte & 0x80), bool(count_byte & 0x40)
    position, padding = 2, 0
    while padded:  # R6/R7: padding length, 255 meaning "254 and more follows"
        if position >= len(packet):
            raise ValueError("Opus code-3 packet cut inside its padding length")
        value = packet[position]
        position += 1
        padding += 254 if value == 255 else value
        padded = value == 255
    if vbr:
        sizes = []
        for _ in range(frames - 1):
            size, used = _frame_length(packet, position)
            position += used
            sizes.append(size)
        last = len(packet) - position - padding - sum(sizes)
        if last < 0:
            raise ValueError("Opus code-3 packet shorter than its frames and padding")  # R6
        return [*sizes, last]
    payload = len(packet) - position - padding
    if payload < 0 or payload % frames:
        raise ValueError("Opus code-3 CBR packet whose payload does not split into equal frames")  # R6
    return [payload // frames] * frames
