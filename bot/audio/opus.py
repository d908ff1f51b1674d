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
