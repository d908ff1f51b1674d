"""Voice data plane of the loopback Discord: the v8 voice websocket over TLS and the UDP media socket.

The websocket checks IDENTIFY against the grant the gateway handed out (``VoiceGrant``: else 4011, 4004 or
4006) and that the client can do DAVE (else 4017, as Discord since 2026-03); it answers HELLO, READY,
heartbeats, SELECT_PROTOCOL and RESUME, and records SPEAKING.

Every call runs DAVE end-to-end encryption, as real Discord's non-stage calls have since 2026-03
(``SESSION_DESCRIPTION.dave_protocol_version: 1``; stage channels and ``dave_version = 0`` run without it): the
server is the MLS external sender of each channel's group (``tests.loopback.dave_call``), and the humans in the
channel are simulated clients that are real group members (``tests.loopback.dave_listener``, Discord's libdave).

The UDP socket answers IP discovery, decrypts every RTP packet (transport encryption) and hands the payload to
the channel's listeners, who DAVE-decrypt it: the session's ``packets`` hold what they heard (stamped with the
kernel's receive time, SO_TIMESTAMPNS, so that a busy test process does not make packets look late). It sends
RTCP receiver reports back (note sections 5.2-5.6). Protocol violations go to ``failures``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import ssl
import struct
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trustme
from aiohttp import WSMsgType, web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt, crypto_aead_xchacha20poly1305_ietf_encrypt
from nacl.exceptions import CryptoError

from tests.loopback.dave_call import DAVE_VERSION, DaveCall
from tests.loopback.dave_listener import Listener
from tests.loopback.discord_state import STAGE_CHANNEL
from tests.loopback.discord_voice_session import VoicePacket, VoiceSession

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator

IDENTIFY, SELECT_PROTOCOL, READY, HEARTBEAT, SESSION_DESCRIPTION, SPEAKING = 0, 1, 2, 3, 4, 5
HEARTBEAT_ACK, RESUME, HELLO, RESUMED = 6, 7, 8, 9
CLIENT_CONNECT = 12  # sent by older clients; Discord ignores it
DAVE_JSON_OPS = {23, 31}  # TRANSITION_READY, INVALID_COMMIT_WELCOME

XCHACHA = "aead_xchacha20_poly1305_rtpsize"
AES_GCM = "aead_aes256_gcm_rtpsize"
MODES = [AES_GCM, XCHACHA]  # Discord's order; discord.py skips the AES mode it lacks (note 5.5)

DISCOVERY_LENGTH = 74
RTP_HEADER = 12
NONCE_SUFFIX = 4
RTCP_RECEIVER_REPORT = 201
REPORT_EVERY = 250  # RTP packets between receiver reports: 5 s of audio, RFC 3550's minimum interval
SERVER_SSRC = 1  # the SSRC the server's own RTCP reports are sent under


@dataclass(frozen=True)
class VoiceGrant:
    """What the gateway handed out for one join (VOICE_STATE_UPDATE + VOICE_SERVER_UPDATE)."""

    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    token: str
    can_speak: bool  # SPEAK in the channel; without it Discord lets the bot in but forwards no audio


class VoiceServer:
    """The TLS voice websocket at ``wss://127.0.0.1:port/?v=8`` and the UDP socket it points clients to."""

    def __init__(self, emulator: DiscordEmulator, *, heartbeat_interval_ms: int = 13750) -> None:
        self.emu = emulator
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.grants: dict[int, VoiceGrant] = {}  # guild id → the grant a client may identify with now
        self.sessions: list[VoiceSession] = []
        self._by_ssrc: dict[int, VoiceSession] = {}
        self.dave_version = DAVE_VERSION  # what SESSION_DESCRIPTION offers outside stage channels (0: no DAVE)
        self.calls: dict[int, DaveCall] = {}  # channel id → the call's MLS group, as its external sender
        self.departed: list[Listener] = []  # simulated humans who have left their call (what they heard stays)
        self.refuse_discovery = False  # fault switch: leave IP discovery unanswered
        self.drop_until = 0.0  # fault switch: loop time until which every datagram is dropped
        self.dropped = 0  # datagrams the drop fault swallowed
        self.port: int | None = None
        self.udp_port: int | None = None
        self.ca_pem_path: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="loopback-voice-")
        self._runner: web.AppRunner | None = None
        self._udp: socket.socket | None = None

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        ca = trustme.CA()
        ca_path = Path(self._tmp.name, "loopback-ca.pem")
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_pem_path = str(ca_path)
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ssl)

        app = web.Application()
        app.router.add_get("/", self._handle_ws)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        udp.bind(("127.0.0.1", 0))
        try:  # arrival = the kernel's receive time, not when this process got round to reading the datagram
            udp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        # Room for ~100 streams' packets while this process is busy (the default ~200 KiB drops them after
        # ~0.1 s); beyond net.core.rmem_max only with SO_RCVBUFFORCE (root), else whatever the kernel allows.
        for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                udp.setsockopt(socket.SOL_SOCKET, option, 8 * 1024 * 1024)
                break
            except OSError:
                continue
        asyncio.get_running_loop().add_reader(udp.fileno(), self._read_udp)
        self._udp = udp
        self.udp_port = udp.getsockname()[1]

    async def close(self) -> None:
        for call in self.calls.values():
            for listener in [m for m in call.members if isinstance(m.member, Listener)]:
                await listener.member.leave()
        for session in self.sessions:
            if session.ws is not None:
                await session.ws.close(code=1001, message=b"Emulator shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        self._tmp.cleanup()

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this server's CA (for in-process clients' connectors)."""
        return ssl.create_default_context(cafile=self.ca_pem_path)

    # -- sessions ---------------------------------------------------------------------------------------

    def guild_sessions(self, guild_id: int) -> list[VoiceSession]:
        return [s for s in self.sessions if s.guild_id == guild_id]

    async def end_sessions(self, guild_id: int, close_code: int | None = None) -> None:
        """End the guild's live sessions (no resume, later packets dropped); close their sockets with
        ``close_code`` if given, as Discord does on a forced disconnect or move (4014)."""
        for session in self.guild_sessions(guild_id):
            if session.ended_at is None:
                await self.end_session(session)
                if close_code is not None:
                    await self.close_ws(session, close_code)

    async def end_session(self, session: VoiceSession) -> None:
        """The session is over: the client has left the call."""
        if session.ended_at is None:
            session.ended_at = self.emu.loop_time()
        call = self.calls.get(session.channel_id)
        if call is not None and session.dave_member is not None:
            await call.disconnect(session.dave_member)

    # -- calls and their human listeners ------------------------------------------------------------------

    async def call(self, guild_id: int, channel_id: int) -> DaveCall:
        """The call in ``channel_id``; a new one starts with the humans already in the channel connected."""
        call = self.calls.get(channel_id)
        if call is None:
            guild = self.emu.guild_by_id(guild_id)
            channel = self.emu.find_channel(channel_id)
            stage = channel is not None and channel.type == STAGE_CHANNEL
            call = self.calls[channel_id] = DaveCall(
                channel_id, self.emu.failures, protocol_version=0 if stage else self.dave_version)
            humans = [uid for uid in (guild.voice_members(channel) if channel else [])
                      if not guild.member(uid).user.bot]
            for user_id in humans:
                await Listener(user_id, call).join()
        return call

    def listeners(self, channel_id: int) -> list[Listener]:
        """The simulated humans connected to the call in ``channel_id``."""
        call = self.calls.get(channel_id)
        return [m.member for m in call.members if isinstance(m.member, Listener)] if call else []

    async def human_moved(self, user_id: int, old_channel_id: int | None, new_channel_id: int | None,
                          guild_id: int) -> None:
        """A human's voice state changed: their client leaves the old call and joins the new one."""
        if old_channel_id == new_channel_id:
            return
        if old_channel_id is not None:
            for listener in self.listeners(old_channel_id):
                if listener.user_id == user_id:
                    await listener.leave()
                    self.departed.append(listener)
        if new_channel_id is not None and new_channel_id in self.calls:
            await Listener(user_id, self.calls[new_channel_id]).join()

    async def close_ws(self, session: VoiceSession, code: int) -> None:
        if session.ws is not None and not session.ws.closed:
            session.close_code = code
            await session.ws.close(code=code)

    # -- websocket --------------------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("v") != "8":
            self.emu.failures.append(f"voice websocket opened with {dict(request.query)}; expected v=8")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session: VoiceSession | None = None
        await self._send(ws, HELLO, {"v": 8, "heartbeat_interval": self.heartbeat_interval_ms})
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await self._binary(ws, session, message.data)
                await self.emu.changes.notify()
                continue
            try:
                payload = json.loads(message.data)
                op, d = payload["op"], payload.get("d")
            except (ValueError, KeyError, TypeError):
                self.emu.failures.append(f"voice: undecodable payload {message.data[:200]!r}")
                await ws.close(code=4002, message=b"Failed to decode payload")
                break
            try:
                session = await self._handle_op(ws, session, op, d)
            except (AttributeError, KeyError, TypeError, ValueError):
                self.emu.failures.append(f"voice: malformed op {op} payload {d!r}:\n{traceback.format_exc()}")
                await ws.close(code=4020, message=b"Bad request")
                break
            await self.emu.changes.notify()
        if session is not None and session.ws is ws:
            session.ws = None
        return ws

    async def _binary(self, ws: web.WebSocketResponse, session: VoiceSession | None, data: bytes) -> None:
        """A client's DAVE/MLS message: ``[u8 opcode][payload]``."""
        if session is None or not data or ws is not session.ws:
            self.emu.failures.append("voice: a binary message outside an identified session")
            return
        if not session.dave_protocol_version or session.dave_member is None:
            self.emu.failures.append(f"voice: binary op {data[0]} while DAVE is off")
            return
        call = self.calls[session.channel_id]
        await call.on_binary(session.dave_member, data[0], bytes(data[1:]))

    async def _handle_op(self, ws: web.WebSocketResponse, session: VoiceSession | None, op: int,
                         d: Any) -> VoiceSession | None:
        """Answer one client payload; returns the session bound to this websocket afterwards."""
        if op == HEARTBEAT:
            await self._send(ws, HEARTBEAT_ACK, {"t": d["t"] if isinstance(d, dict) else d})
        elif op == IDENTIFY:
            if session is not None:
                await ws.close(code=4005, message=b"Already authenticated")
                return session
            return await self._identify(ws, d)
        elif op == RESUME:
            return await self._resume(ws, d)
        elif session is None:
            self.emu.failures.append(f"voice: op {op} before IDENTIFY")
            await ws.close(code=4003, message=b"Not authenticated")
        elif op == SELECT_PROTOCOL:
            await self._select_protocol(ws, session, d)
        elif op == SPEAKING:
            if d.get("ssrc") != session.ssrc:
                self.emu.failures.append(f"voice: SPEAKING for ssrc {d.get('ssrc')}, session has {session.ssrc}")
            session.speaking_events.append((self.emu.loop_time(), int(d["speaking"])))
        elif op in DAVE_JSON_OPS:
            if not session.dave_protocol_version or session.dave_member is None:
                self.emu.failures.append(f"voice: DAVE op {op} while DAVE is off")
            else:
                await self.calls[session.channel_id].on_json(session.dave_member, op, d)
        elif op != CLIENT_CONNECT:
            self.emu.failures.append(f"voice: unknown op {op}")
            await ws.close(code=4001, message=b"Unknown opcode")
        return session

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> VoiceSession | None:
        grant = self.grants.get(int(d.get("server_id") or 0))
        if grant is None:
            await ws.close(code=4011, message=b"Server not found")
            return None
        if d.get("token") != grant.token:
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        if d.get("session_id") != grant.session_id or str(d.get("user_id")) != str(grant.user_id):
            await ws.close(code=4006, message=b"Session no longer valid")
            return None
        if not d.get("max_dave_protocol_version"):  # Discord requires DAVE-capable clients since 2026-03 (5.6)
            await ws.close(code=4017, message=b"E2EE/DAVE protocol required")
            return None
        for old in self.guild_sessions(grant.guild_id):  # a reconnect: the old connection has left the call
            if old.ended_at is None and old.user_id == grant.user_id:
                await self.end_session(old)
        ssrc = secrets.randbits(32)
        channel = self.emu.find_channel(grant.channel_id)
        session = VoiceSession(
            guild_id=grant.guild_id, channel_id=grant.channel_id, user_id=grant.user_id,
            session_id=grant.session_id, token=grant.token, can_speak=grant.can_speak, ssrc=ssrc,
            secret_key=secrets.token_bytes(32), started=self.emu.loop_time(), changes=self.emu.changes, ws=ws,
            stage=channel is not None and channel.type == STAGE_CHANNEL)
        self.sessions.append(session)
        self._by_ssrc[ssrc] = session
        await self._send(ws, READY, {"ssrc": ssrc, "ip": "127.0.0.1", "port": self.udp_port, "modes": MODES})
        return session

    async def _resume(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> VoiceSession | None:
        """Rebind a live session (closed with 4015, say) to this websocket; keys and SSRC carry over."""
        server_id, token = int(d.get("server_id") or 0), d.get("token")
        session = next((s for s in reversed(self.guild_sessions(server_id))
                        if s.ended_at is None and s.token == token and s.session_id == d.get("session_id")), None)
        if session is None:
            await ws.close(code=4006, message=b"Session no longer valid")
            return None
        session.ws = ws
        session.resumes += 1
        await self._send(ws, RESUMED, None)
        return session

    async def _select_protocol(self, ws: web.WebSocketResponse, session: VoiceSession, d: dict[str, Any]) -> None:
        data = d.get("data") or {}
        mode = data.get("mode")
        if d.get("protocol") != "udp" or mode not in MODES:
            self.emu.failures.append(f"voice: SELECT_PROTOCOL {d!r}")
            await ws.close(code=4016, message=b"Unknown encryption mode")
            return
        if session.address != (data.get("address"), data.get("port")):
            self.emu.failures.append(f"voice: SELECT_PROTOCOL address {data.get('address')}:{data.get('port')} "
                                     f"is not what IP discovery answered ({session.address})")
        session.mode = mode
        call = await self.call(session.guild_id, session.channel_id)
        session.dave_protocol_version = call.protocol_version
        await session.send_json(SESSION_DESCRIPTION, {"mode": mode, "secret_key": list(session.secret_key),
                                                      "dave_protocol_version": call.protocol_version})
        self._send_receiver_report(session)
        if session.dave_member is None:
            session.dave_member = BotMember(session)
            await call.connect(session.dave_member)

    @staticmethod
    async def _send(ws: web.WebSocketResponse, op: int, d: Any) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps({"op": op, "d": d}))


    # -- UDP --------------------------------------------------------------------------------------------

    def _send_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._udp is not None:
            try:
                self._udp.sendto(data, addr)
            except OSError:  # a full socket buffer: UDP may drop, and the client copes
                pass

    def _read_udp(self) -> None:
        """Every datagram waiting, each stamped with its kernel receive time on the loop's clock."""
        while self._udp is not None:
            try:
                data, ancillary, _flags, addr = self._udp.recvmsg(65536, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.datagram_received(data, addr, _arrival(self.emu.loop_time(), ancillary))

    def datagram_received(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if now < self.drop_until:
            self.dropped += 1
            return
        if len(data) == DISCOVERY_LENGTH and data[:4] == struct.pack(">HH", 1, 70):
            self._discover(data, addr)
        else:
            self._receive_rtp(data, addr, now)

    def _discover(self, data: bytes, addr: tuple[str, int]) -> None:
        ssrc = struct.unpack_from(">I", data, 4)[0]
        session = self._by_ssrc.get(ssrc)
        if session is None:
            self.emu.failures.append(f"voice: IP discovery for unknown ssrc {ssrc}")
            return
        session.address = addr
        if not self.refuse_discovery and self._udp is not None:
            reply = struct.pack(">HHI", 2, 70, ssrc) + addr[0].encode().ljust(64, b"\0") + struct.pack(">H", addr[1])
            self._send_udp(reply, addr)

    def _receive_rtp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if len(data) < RTP_HEADER + 16 + NONCE_SUFFIX or data[:2] != b"\x80\x78":
            self.emu.failures.append(f"voice: not an RTP Opus packet ({len(data)} bytes, {data[:2].hex()})")
            return
        seq, timestamp, ssrc = struct.unpack_from(">HII", data, 2)
        session = self._by_ssrc.get(ssrc)
        if session is None or session.mode is None:
            self.emu.failures.append(f"voice: RTP packet for ssrc {ssrc} without a selected protocol")
            return
        if session.ended_at is not None:
            session.late_packets += 1
            return
        if addr != session.address:
            self.emu.failures.append(f"voice: RTP from {addr}, but IP discovery came from {session.address}")
        header, nonce = data[:RTP_HEADER], data[-NONCE_SUFFIX:]
        try:
            opus = _decrypt(session, header, data[RTP_HEADER:-NONCE_SUFFIX], nonce)
        except (CryptoError, ValueError) as exc:
            self.emu.failures.append(f"voice: packet seq {seq} does not decrypt with the session key: {exc!r}")
            return
        packet = self._heard(session, now, seq, timestamp, ssrc, struct.unpack(">I", nonce)[0], opus)
        if packet.is_ogg_header:
            header = packet.opus[:8].decode(errors='replace')
            self.emu.failures.append(f"voice: an Ogg {header} packet was sent as audio (seq {seq})")
        session.packets.append(packet)
        if len(session.packets) % REPORT_EVERY == 0:
            self._send_receiver_report(session)

    def _heard(self, session: VoiceSession, now: float, seq: int, timestamp: int, ssrc: int, nonce: int,
               payload: bytes) -> VoicePacket:
        """The packet as the call's humans heard it: DAVE-decrypted by each listener (the first one's result).

        A sender in a stage's audience (suppressed) is forwarded to nobody: nobody hears the packet.
        """
        suppressed = self._suppressed(session)
        if not session.dave_protocol_version:
            return VoicePacket(now, seq, timestamp, ssrc, nonce, payload, payload=payload, heard=not suppressed,
                               suppressed=suppressed)
        opus = None
        members = 0
        for listener in self.listeners(session.channel_id):
            members += listener.in_group_since is not None
            frame = listener.hear(session.user_id, payload, now)
            if opus is None:
                opus = frame
        return VoicePacket(now, seq, timestamp, ssrc, nonce, opus or b"", payload=payload,
                           heard=opus is not None and not suppressed, e2ee=True, listeners_in_group=members,
                           suppressed=suppressed)

    def _suppressed(self, session: VoiceSession) -> bool:
        """The sender is in a stage's audience right now (its voice state says ``suppress``)."""
        if not session.stage:
            return False
        guild = next((g for g in self.emu.guilds if g.id == session.guild_id), None)
        state = guild.voice_state_of(session.user_id) if guild is not None else None
        return state is not None and state.channel_id == session.channel_id and state.suppress

    def _send_receiver_report(self, session: VoiceSession) -> None:
        """Send the client an RTCP receiver report, as Discord's voice server does.

        Besides realism this matters: discord.py's socket reader thread sits in ``select()`` on its UDP socket
        and only notices that the socket was replaced (on a reconnect) once a datagram wakes it; without any
        inbound traffic, the next IP discovery goes unheard for up to 30 s.
        """
        if self._udp is None or session.address is None:
            return
        highest_seq = session.packets[-1].seq if session.packets else 0
        header = struct.pack(">BBHI", 0x81, RTCP_RECEIVER_REPORT, 7, SERVER_SSRC)
        block = struct.pack(">IIIIII", session.ssrc, 0, highest_seq, 0, 0, 0)
        nonce = struct.pack(">I", session.reports_sent)
        session.reports_sent += 1
        self._send_udp(header + _encrypt(session, header, block, nonce) + nonce, session.address)


def _encrypt(session: VoiceSession, header: bytes, plaintext: bytes, nonce: bytes) -> bytes:
    if session.mode == XCHACHA:
        return crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header, nonce + b"\0" * 20, session.secret_key)
    return AESGCM(session.secret_key).encrypt(nonce + b"\0" * 8, plaintext, header)


def _decrypt(session: VoiceSession, header: bytes, ciphertext: bytes, nonce: bytes) -> bytes:
    """The ``*_rtpsize`` AEAD modes: AAD = the RTP header; the nonce is the 4-byte counter, zero padded."""
    if session.mode == XCHACHA:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, header, nonce + b"\0" * 20,
                                                          session.secret_key)
    try:
        return AESGCM(session.secret_key).decrypt(nonce + b"\0" * 8, ciphertext, header)
    except InvalidTag as exc:  # carries no message of its own
        raise ValueError("AES-GCM tag mismatch") from exc


#: Linux's SO_TIMESTAMPNS (asm-generic/socket.h; the SCM_ message type has the same value): the kernel stamps
#: each datagram when it arrives. Python's socket module does not name it.
SO_TIMESTAMPNS = 35
#: Linux's SO_RCVBUFFORCE (root may raise the receive buffer past net.core.rmem_max); also unnamed in Python.
SO_RCVBUFFORCE = 33


def _arrival(loop_now: float, ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the datagram arrived, on the loop's clock: now, minus how long ago the kernel received it."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack_from("ll", payload)
            return loop_now - max(0.0, time.time() - (seconds + nanoseconds / 1e9))
    return loop_now


class BotMember:
    """The bot's voice connection as a member of its call's DAVE group (``tests.loopback.dave_call.Member``):
    what the gateway sends goes out on the session's current websocket, sequenced."""

    def __init__(self, session: VoiceSession) -> None:
        self.session = session
        self.user_id = session.user_id

    async def send_json(self, op: int, d: object) -> None:
        await self.session.send_json(op, d)

    async def send_binary(self, op: int, payload: bytes) -> None:
        await self.session.send_binary(op, payload)
