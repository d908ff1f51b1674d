"""Gateway half of the loopback Discord: HELLO, heartbeats, IDENTIFY/READY/GUILD_CREATE, RESUME, dispatch.

Text frames only (discord.py decompresses binary frames alone, so compression can be ignored; note 3.1).
Every op the client sends is recorded; tests and later features react to ops through ``on_op`` hooks,
and push events with ``dispatch``.

Sharding, strictly: IDENTIFY may carry ``shard: [id, count]`` (none means ``[0, 1]``). A session is told only
about the guilds of its shard, ``(guild_id >> 22) % count`` (READY, GUILD_CREATE and every guild event;
events without a guild go to shard 0, as DMs do), and op 4 or op 8 for another shard's guild is a failure.
A malformed shard, a count different from the other connected sessions' or a shard that is already connected
closes with 4010 (Invalid shard); a session that would hold more than ``emu.max_guilds_per_session`` guilds
(Discord: 2500) closes with 4011 (Sharding required). Discord documents 4010 for "an invalid shard" without
saying whether a second live session of the same shard counts; the emulator refuses it, so that two bot
processes configured with the same SHARD_IDS fail loudly instead of answering everything twice.

RESUME is checked like Discord checks it: the token, a known session that has not been invalidated, and a
``seq`` the session really sent (0 ≤ seq ≤ last). Anything else is answered with op 9 ``d: false``; a bad
``seq`` also ends the session. A good RESUME replays every dispatch after ``seq`` in order, then RESUMED; a RESUME of a
session whose old socket is still open closes that socket first. Faults: ``drop(code)`` cuts every
connection (abruptly with ``code=None``, else with that close code), ``request_reconnect()`` sends op 7,
``invalidate(resumable)`` sends op 9 (with ``resumable=False`` the session is forgotten, as on Discord), and
``outage()`` holds new connections before HELLO, so that what is dispatched meanwhile is surely missed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.loopback.discord_chat import MESSAGE_CONTENT_INTENT, content_intent_allowed

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11
INVALID_SHARD, SHARDING_REQUIRED = 4010, 4011
#: Events whose guild is the payload's own ``id`` rather than its ``guild_id``.
_GUILD_OBJECT_EVENTS = ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE")

OpHook = Callable[["GatewaySession", Any], Awaitable[None]]


@dataclass
class SentOp:
    """One payload the client sent: its op code and ``d``."""

    op: int
    d: Any


@dataclass
class GatewaySession:
    """An identified gateway session; it outlives its websocket so that RESUME can replay what was missed."""

    id: str
    intents: int
    shard: list[int] | None
    properties: dict[str, Any]
    ws: web.WebSocketResponse | None = None
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for replay on RESUME
    ready: bool = False  # READY and every GUILD_CREATE sent
    presence: dict[str, Any] | None = None  # IDENTIFY's presence (the status and activity the bot starts with)

    @property
    def shard_id(self) -> int:
        return self.shard[0] if self.shard else 0

    @property
    def shard_count(self) -> int:
        return self.shard[1] if self.shard else 1

    @property
    def live(self) -> bool:
        """The websocket is open (a closed session may still be RESUMEd, but holds no shard)."""
        return self.ws is not None and not self.ws.closed

    @property
    def activities(self) -> list[dict[str, Any]]:
        """The activities IDENTIFY's presence set: Discord documents an ``activities`` list; discord.py 2.7.1
        still sends the older single ``game`` (``gateway.py`` ``identify``), which Discord accepts."""
        presence = self.presence or {}
        if "activities" in presence:
            return list(presence["activities"] or [])
        return [presence["game"]] if presence.get("game") else []

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session's shard carries ``guild_id`` (None: events outside guilds, for shard 0)."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_of(guild_id, self.shard_count) == self.shard_id
    resumes: int = 0  # successful RESUMEs of this session
    replayed: int = 0  # dispatches sent again on those RESUMEs

    async def send(self, payload: dict[str, Any]) -> None:
        if self.ws is not None and not self.ws.closed:
            try:
                await self.ws.send_str(json.dumps(payload))
            except ConnectionResetError:  # the client is hanging up; dispatches stay buffered for a RESUME
                pass

    async def dispatch(self, event: str, data: Any) -> None:
        """Number the event, keep it for a later RESUME, and send it if connected."""
        self.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.events.append(payload)
        await self.send(payload)


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's sharding formula."""
    return (guild_id >> 22) % shard_count


def guild_of(event: str, data: Any) -> int | None:
    """The guild an event belongs to, for routing it to a shard."""
    if not isinstance(data, dict):
        return None
    raw = data.get("id") if event in _GUILD_OBJECT_EVENTS else data.get("guild_id")
    return None if raw is None else int(raw)


class Gateway:
    """The ``GET /gateway`` websocket endpoint and its sessions."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.sessions: dict[str, GatewaySession] = {}
        self.ops: list[SentOp] = []  # every payload any client sent, in order
        self.hooks: dict[int, list[OpHook]] = {}
        self.connections: set[web.WebSocketResponse] = set()
        self.identified = 0  # successful IDENTIFYs (session starts)
        self.invalidated: list[str] = []  # ids of sessions ended by op 9 false (never resumable again)
        self._transports: dict[web.WebSocketResponse, Any] = {}  # for cutting a connection without a close frame
        self._background: set[asyncio.Task[Any]] = set()  # closes and heartbeat ACKs under way
        self._serving = asyncio.Event()  # cleared during an outage: new connections wait before HELLO
        self._serving.set()

    def on_op(self, op: int, hook: OpHook) -> None:
        """Run ``await hook(session, d)`` whenever an identified client sends ``op``."""
        self.hooks.setdefault(op, []).append(hook)

    def sessions_for(self, guild_id: int | None) -> list[GatewaySession]:
        """The identified sessions whose shard carries ``guild_id`` (live or waiting for a RESUME)."""
        return [session for session in self.sessions.values() if session.owns(guild_id)]

    async def dispatch(self, event: str, data: Any) -> None:
        """Send an event to every session of its guild's shard (buffered for RESUME while disconnected)."""
        for session in self.sessions_for(guild_of(event, data)):
            await session.dispatch(event, data)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT, which makes discord.py close and RESUME."""
        for session in self.sessions.values():
            await session.send({"op": RECONNECT, "d": None})

    async def drop(self, code: int | None = None) -> None:
        """Fault: cut every gateway connection. ``code=None`` is an abrupt end (the TCP connection closes with
        no close frame, like a network failure); otherwise a close frame with ``code`` (e.g. 4000, 1001).
        Sessions stay resumable; dispatches meanwhile are buffered for the RESUME."""
        for ws in list(self.connections):
            transport = self._transports.get(ws)
            if code is None and transport is not None:
                transport.abort()
            else:
                await ws.close(code=code or 4000, message=b"Dropped by the loopback gateway")

    @asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """While inside, new connections are accepted but get no HELLO (the client waits, as during a real
        outage); on the way out they are served. Use it around ``drop``/``request_reconnect``/``invalidate``
        and wait for ``connected()`` to turn False before dispatching what the client must miss."""
        self._serving.clear()
        try:
            yield
        finally:
            self._serving.set()

    def connected(self, session: GatewaySession) -> bool:
        return session.ws is not None and not session.ws.closed

    async def invalidate(self, resumable: bool) -> None:
        """Fault: send op 9 INVALID_SESSION to every connected session. ``resumable=False`` forgets the
        session first (a later RESUME of it gets op 9 false), so the client must IDENTIFY again."""
        for session in list(self.sessions.values()):
            if session.ws is None or session.ws.closed:
                continue
            if not resumable:
                self._forget(session)
            await session.send({"op": INVALID_SESSION, "d": resumable})

    def _forget(self, session: GatewaySession) -> None:
        self.sessions.pop(session.id, None)
        self.invalidated.append(session.id)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if query.get("v") != "10" or query.get("encoding") != "json":
            self.emu.failures.append(f"gateway connected with {query}; expected v=10&encoding=json")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.add(ws)
        self._transports[ws] = request.transport
        session: GatewaySession | None = None
        try:
            await self._serving.wait()
            if ws.closed:
                return ws
            try:
                hello = {"op": HELLO, "d": {"heartbeat_interval": self.emu.heartbeat_interval_ms}}
                await ws.send_str(json.dumps(hello))
            except ConnectionResetError:  # the client gave up while held by an outage
                return ws
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    await ws.close(code=4002, message=b"Decode error")
                    break
                try:
                    payload = json.loads(message.data)
                    op, d = payload["op"], payload.get("d")
                except (ValueError, KeyError, TypeError):
                    self.emu.failures.append(f"gateway: undecodable payload {message.data[:200]!r}")
                    await ws.close(code=4002, message=b"Decode error")
                    break
                self.ops.append(SentOp(op, d))
                session = await self._handle_op(ws, session, op, d)
                await self.emu.changes.notify()
        finally:
            self.connections.discard(ws)
            self._transports.pop(ws, None)
            if session is not None and session.ws is ws:
                session.ws = None
        return ws

    async def _ack_heartbeat(self, ws: web.WebSocketResponse) -> None:
        await asyncio.sleep(0.02)
        if not ws.closed:
            try:
                await ws.send_str(json.dumps({"op": HEARTBEAT_ACK}))
            except ConnectionResetError:
                pass

    async def _handle_op(self, ws: web.WebSocketResponse, session: GatewaySession | None, op: int,
                         d: Any) -> GatewaySession | None:
        """Answer one client payload; returns the session bound to this connection afterwards."""
        if op == HEARTBEAT:
            # After a network-like 20 ms: discord.py 2.7.1 stamps a heartbeat as sent only once its send has
            # returned on the keep-alive thread, so an instant ACK is measured against the previous beat
            # ("Can't keep up ... 41.3s behind", and a gateway latency of one heartbeat interval).
            acking = asyncio.create_task(self._ack_heartbeat(ws))
            self._background.add(acking)
            acking.add_done_callback(self._background.discard)
            return session
        if op == IDENTIFY:
            if session is not None:
                await ws.close(code=4005, message=b"Already authenticated")
                return session
            return await self._identify(ws, d)
        if op == RESUME:
            return await self._resume(ws, d)
        if session is None:
            self.emu.failures.append(f"gateway: op {op} before IDENTIFY")
            await ws.close(code=4003, message=b"Not authenticated")
            return None
        if op in (REQUEST_GUILD_MEMBERS, VOICE_STATE_UPDATE) and not session.owns(guild_of("", d)):
            self.emu.failures.append(f"gateway: op {op} for guild {d.get('guild_id')} on shard "
                                     f"{[session.shard_id, session.shard_count]}, which does not carry it")
            return session
        if op == REQUEST_GUILD_MEMBERS:
            await self._send_member_chunk(session, d)
        for hook in self.hooks.get(op, []):
            try:
                await hook(session, d)
            except Exception:  # a broken hook is an emulator bug: report it, keep the bot's connection
                self.emu.failures.append(f"gateway hook for op {op} crashed:\n{traceback.format_exc()}")
        return session

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> GatewaySession | None:
        if d.get("token") != self.emu.token:
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        if "intents" not in d:
            self.emu.failures.append("gateway: IDENTIFY without intents")
            await ws.close(code=4013, message=b"Invalid intent(s)")
            return None
        if d["intents"] & MESSAGE_CONTENT_INTENT and not content_intent_allowed(self.emu.application_flags):
            await ws.close(code=4014, message=b"Disallowed intent(s)")
            return None
        shard = d.get("shard")
        if (refusal := self._shard_refusal(shard)) is not None:
            await ws.close(code=INVALID_SHARD, message=refusal.encode())
            return None
        session = GatewaySession(id=secrets.token_hex(16), intents=d["intents"], shard=shard,
                                 properties=d.get("properties", {}), ws=ws, presence=d.get("presence"))
        guilds = [g for g in self.emu.guilds if session.owns(g.id)]
        if len(guilds) > self.emu.max_guilds_per_session:
            await ws.close(code=SHARDING_REQUIRED, message=b"Sharding required")
            return None
        self.identified += 1
        self.sessions[session.id] = session
        await session.dispatch("READY", {
            "v": 10,
            "user": self.emu.bot_user_private(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "resume_gateway_url": self.emu.gateway_url,
            "session_type": "normal",
            "application": {"id": str(self.emu.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "shard": d.get("shard", [0, 1]),
        })
        for guild in guilds:
            await session.dispatch("GUILD_CREATE", guild.to_payload())
        session.ready = True
        return session

    def _shard_refusal(self, shard: Any) -> str | None:
        """Why IDENTIFY's ``shard`` is invalid (close 4010), or None."""
        if shard is None:
            shard_id, count = 0, 1
        elif (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)
              and 0 <= shard[0] < shard[1]):
            shard_id, count = shard
        else:
            return "Invalid shard"
        for other in self.sessions.values():
            if other.live and other.shard_count != count:
                return "Invalid shard: another session runs with a different shard count"
            if other.live and other.shard_id == shard_id:
                return "Invalid shard: this shard is already connected"
        return None

    async def _resume(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> GatewaySession | None:
        """Replay what the session missed, like Discord; anything Discord would refuse gets op 9 false."""
        session = self.sessions.get(d.get("session_id") or "")
        seq = d.get("seq")
        valid_seq = (isinstance(seq, int) and not isinstance(seq, bool) and session is not None
                     and 0 <= seq <= session.seq)
        if session is None or d.get("token") != self.emu.token or not valid_seq:
            if session is not None and d.get("token") == self.emu.token:
                self._forget(session)  # a RESUME with a seq the session never sent: Discord drops the session
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False}))
            return None
        if session.ws is not None and session.ws is not ws and not session.ws.closed:
            # Discord keeps one socket per session. Closing waits for the client's answer, so not inline.
            closing = asyncio.create_task(session.ws.close(code=4000, message=b"Resumed elsewhere"))
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)
        session.ws = None  # dispatches during the replay are buffered, and sent by the replay, in order
        sent = seq
        while pending := [event for event in session.events if event["s"] > sent]:
            for event in pending:
                await ws.send_str(json.dumps(event))
                sent = event["s"]
                session.replayed += 1
        session.ws = ws  # nothing awaited since the last check: no dispatch can slip between
        session.resumes += 1
        await session.dispatch("RESUMED", {})
        return session

    async def _send_member_chunk(self, session: GatewaySession, d: dict[str, Any]) -> None:
        """Answer op 8 with every member in one chunk (what ``chunk_guilds_at_startup`` waits for)."""
        guild = self.emu.guild_by_id(int(d["guild_id"]))
        chunk = {"guild_id": str(guild.id), "members": [m.to_payload() for m in guild.members],
                 "chunk_index": 0, "chunk_count": 1, "not_found": []}
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def close(self) -> None:
        self._serving.set()
        for ws in list(self.connections):
            await ws.close(code=1001, message=b"Emulator shutting down")
