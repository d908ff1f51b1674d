"""What the loopback Discord's voice server received in one voice session, and checks over it.

A ``VoiceSession`` is one identified voice websocket (one SSRC and secret key); discord.py opens a new one
after every join, move or full reconnect, and keeps it across a RESUME. Tests read ``packets`` and
``speaking_events`` or call ``check_stream()`` / ``decode_pcm()`` (note sections 5.5, 6 and 8.2).
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from discord.oggparse import OggStream

if TYPE_CHECKING:
    from aiohttp import web

    from tests.loopback.discord_messages import Changes

OPUS_SILENCE = b"\xf8\xff\xfe"  # discord.py sends five of these when playback stops (player.py)
OGG_HEADERS = (b"OpusHead", b"OpusTags")  # Ogg container packets; never audio, never to be sent
SAMPLES_PER_FRAME = 960  # 20 ms at 48 kHz: the RTP timestamp step and every packet's duration
SAMPLE_RATE = 48_000
FRAME_SECONDS = SAMPLES_PER_FRAME / SAMPLE_RATE
#: SPEAKING travels over TLS while audio goes straight out over UDP, so a SPEAKING sent just before the first
#: packet may be read just after it; the checks allow this much.
SPEAKING_GRACE = 0.1


@dataclass(frozen=True)
class VoicePacket:
    """One RTP packet: arrival on the emulator's monotonic clock, RTP fields, and what the humans in the call
    heard: ``opus`` is the frame after transport and DAVE decryption (empty when nobody could decrypt it).

    ``payload`` is the RTP payload after transport decryption only (a DAVE frame while DAVE is on).
    """

    arrival: float
    seq: int
    timestamp: int
    ssrc: int
    nonce: int
    opus: bytes
    payload: bytes = b""
    heard: bool = True  # a listener could play it (always, without DAVE)
    e2ee: bool = False  # sent in a call running DAVE
    listeners_in_group: int = 0  # humans in the MLS group when it arrived
    suppressed: bool = False  # the sender was in a stage's audience: the voice server forwarded it to nobody

    @property
    def plaintext(self) -> bool:
        """Sent in the clear although the call is end-to-end encrypted: every listener drops it."""
        return self.e2ee and self.payload != OPUS_SILENCE and not self.payload.endswith(b"\xfa\xfa")

    @property
    def is_silence(self) -> bool:
        return (self.payload or self.opus) == OPUS_SILENCE

    @property
    def is_ogg_header(self) -> bool:
        return self.opus.startswith(OGG_HEADERS)


@dataclass
class VoiceSession:
    """One voice session: the grant it was identified with, its keys, and everything it sent."""

    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    token: str
    can_speak: bool
    ssrc: int
    secret_key: bytes
    started: float
    changes: Changes
    ws: web.WebSocketResponse | None = None
    address: tuple[str, int] | None = None  # the client's UDP address, learnt from IP discovery
    mode: str | None = None  # the encryption mode from SELECT_PROTOCOL
    packets: list[VoicePacket] = field(default_factory=list)
    speaking_events: list[tuple[float, int]] = field(default_factory=list)  # (arrival, speaking flags)
    resumes: int = 0
    reports_sent: int = 0  # RTCP receiver reports sent back to the client
    late_packets: int = 0  # datagrams that arrived after the session ended (Discord forwards them nowhere)
    ended_at: float | None = None  # left, moved, disconnected or invalidated: no resume, packets dropped
    close_code: int | None = None  # the code the server closed the websocket with, if it did
    dave_protocol_version: int = 0  # what SESSION_DESCRIPTION said (0: no end-to-end encryption)
    dave_member: Any = None  # the session as a member of its call's DAVE group (BotMember)
    stage: bool = False  # in a stage channel: what the bot sends is heard only while it is a speaker
    seq: int = 0  # the last sequence number of a server message (v8: binary and DAVE JSON messages)

    async def send_json(self, op: int, d: Any) -> None:
        """Send a sequenced JSON message on the session's current websocket."""
        if self.ws is not None and not self.ws.closed:
            self.seq = (self.seq + 1) % 65536
            await self.ws.send_str(json.dumps({"op": op, "d": d, "seq": self.seq}))

    async def send_binary(self, op: int, payload: bytes) -> None:
        """Send a binary DAVE message: ``[u16 sequence][u8 opcode][payload]``."""
        if self.ws is not None and not self.ws.closed:
            self.seq = (self.seq + 1) % 65536
            await self.ws.send_bytes(struct.pack(">HB", self.seq, op) + payload)

    @property
    def ready(self) -> bool:
        """Identified, protocol selected and the websocket still open: audio would be heard."""
        return self.ended_at is None and self.mode is not None and self.ws is not None and not self.ws.closed

    def audio_packets(self) -> list[VoicePacket]:
        """The packets carrying sound that the humans heard: without silence frames, Ogg header packets, and
        frames nobody could decrypt."""
        return [p for p in self.packets if p.heard and not p.is_silence and not p.is_ogg_header]

    def plaintext_frames(self) -> list[VoicePacket]:
        """Audio frames sent in the clear while the call was end-to-end encrypted (lost to every listener)."""
        return [p for p in self.packets if p.plaintext]

    def suppressed_frames(self) -> list[VoicePacket]:
        """Audio frames sent while the bot was in a stage's audience (suppressed): nobody heard them."""
        return [p for p in self.packets if p.suppressed and not p.is_silence]

    def unheard_frames(self) -> list[VoicePacket]:
        """DAVE frames that arrived while a human was in the group and that no human could decrypt."""
        return [p for p in self.packets
                if p.e2ee and not p.heard and not p.plaintext and not p.suppressed and p.listeners_in_group]

    def trailing_silence(self) -> int:
        """How many silence frames end the stream (discord.py sends 5 when playback stops)."""
        count = 0
        for packet in reversed(self.packets):
            if not packet.is_silence:
                break
            count += 1
        return count

    async def wait_packets(self, n: int, timeout: float = 10) -> list[VoicePacket]:
        """Wait until at least ``n`` packets arrived; returns them all."""
        return await self.changes.wait_for(lambda: len(self.packets) >= n and self.packets, timeout,
                                           f"{n} voice packets (got {len(self.packets)})")

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 10) -> list[VoicePacket]:
        """Wait until no packet has arrived for ``quiet`` seconds (playback over); returns the packets."""
        loop = asyncio.get_running_loop()

        def idle() -> bool:
            last = self.packets[-1].arrival if self.packets else self.started
            return loop.time() - last >= quiet

        await self.changes.wait_for(idle, timeout, f"{quiet} s without voice packets")
        return list(self.packets)

    def check_stream(self) -> list[str]:
        """Problems Discord's receivers would notice, as readable strings (empty when the stream is sound)."""
        if not self.packets:
            return ["no voice packets"]
        problems = [] if self.can_speak else ["the bot lacks SPEAK in this channel: nobody hears it"]
        for before, after in zip(self.packets, self.packets[1:], strict=False):
            if after.seq != (before.seq + 1) % 65536:
                problems.append(f"sequence jumps from {before.seq} to {after.seq}")
            if after.timestamp != (before.timestamp + SAMPLES_PER_FRAME) % 2**32:
                problems.append(f"timestamp steps {after.timestamp - before.timestamp} after seq {before.seq}")
            if after.nonce <= before.nonce:
                problems.append(f"nonce {after.nonce} reused or going back after seq {before.seq}")
        audio = self.audio_packets()
        if len(audio) >= 10 and audio[-1].arrival - audio[0].arrival < 0.9 * FRAME_SECONDS * (len(audio) - 1):
            problems.append(f"{len(audio)} audio packets in {audio[-1].arrival - audio[0].arrival:.2f} s: "
                            "faster than one per 20 ms, so Discord would drop or rush them")
        if plaintext := self.plaintext_frames():
            problems.append(f"{len(plaintext)} audio frames sent in plaintext while the call is end-to-end "
                            f"encrypted (first: seq {plaintext[0].seq}): every listener drops them")
        if suppressed := self.suppressed_frames():
            problems.append(f"{len(suppressed)} audio frames sent while suppressed on a stage (first: seq "
                            f"{suppressed[0].seq}): nobody hears them")
        if unheard := self.unheard_frames():
            problems.append(f"{len(unheard)} DAVE frames no listener in the group could decrypt "
                            f"(first: seq {unheard[0].seq})")
        start = self.packets[0].arrival + SPEAKING_GRACE
        if not any(at <= start for at, _ in self.speaking_events):
            problems.append("audio before any SPEAKING: Discord does not know the SSRC yet")
        if not any(flags & 1 and at <= start for at, flags in self.speaking_events):
            problems.append("no SPEAKING with the voice flag when audio started")
        return problems


def ogg_audio_packets(ogg: bytes) -> list[bytes]:
    """The Opus audio packets of an Ogg Opus file: what ``audio_packets()`` should equal after playing it."""
    return [p for p in OggStream(io.BytesIO(ogg)).iter_packets() if not p.startswith(OGG_HEADERS)]


def decode_pcm(packets: Iterable[VoicePacket | bytes]) -> np.ndarray:
    """Decode Opus packets with libopus into 48 kHz stereo s16 PCM, shape (samples, 2).

    Raises ``ValueError`` if a packet does not decode to exactly one 20 ms frame: Discord plays one packet
    per 20 ms whatever its length, so longer packets would play too fast (note section 6).
    """
    codec = av.CodecContext.create("libopus", "r")
    codec.sample_rate = SAMPLE_RATE
    codec.layout = "stereo"
    chunks = []
    for index, packet in enumerate(packets):
        frames = codec.decode(av.Packet(packet.opus if isinstance(packet, VoicePacket) else packet))
        samples = sum(frame.samples for frame in frames)
        if samples != SAMPLES_PER_FRAME:
            raise ValueError(f"packet {index} decodes to {samples} samples, not {SAMPLES_PER_FRAME}")
        for frame in frames:
            chunks.append(frame.to_ndarray().reshape(-1, 2))  # packed s16: interleaved L/R
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int16)
