"""Voice control plane of the loopback Discord: gateway op 4, the guilds' voice states, and test controls.

The bot's op 4 with a channel is checked the way Discord does: a voice channel, VIEW_CHANNEL + CONNECT, room
under ``user_limit`` unless MOVE_MEMBERS. A refused join gets no answer at all, so ``connect()`` times out, and
lands in ``ignored_joins``. Without SPEAK the bot may join, but ``check_stream()`` reports that nobody hears it.
An accepted join is answered with the bot's VOICE_STATE_UPDATE and a VOICE_SERVER_UPDATE pointing at the
``VoiceServer`` (a fresh token each time); a connection the bot already had in that guild is closed with 4014,
as Discord does on a move. The same channel again (a self-mute toggle) only updates the voice state. Op 4
without a channel answers with the null-channel VOICE_STATE_UPDATE that ``VoiceClient.disconnect()`` waits
for (note sections 5.1 and 8.2).

    vc = await client.get_channel(emu.voice_channel.id).connect()   # client trusts emu.voice.server's CA
    vc.play(source); session = emu.voice_session(); await session.wait_idle()
    assert session.check_stream() == [] and session.trailing_silence() == 5

Stage channels (type 13) are joined the same way, but everyone joins in the audience (``suppress: true``) and the
voice server forwards nothing a suppressed member sends (``VoicePacket.suppressed``; ``check_stream()`` reports
it). The bot leaves the audience with ``PATCH /guilds/{id}/voice-states/@me`` as Discord's "Modify Current User
Voice State" says: ``suppress: false`` needs MUTE_MEMBERS in the stage, a ``request_to_speak_timestamp`` needs
REQUEST_TO_SPEAK (else 403 50013), the channel must be the stage the bot is in; the change comes back as a
VOICE_STATE_UPDATE. A stage moderator (the test) accepts a request with ``invite_bot_to_speak`` and sends the bot
back with ``move_bot_to_audience``. Stages run without DAVE (``dave_protocol_version: 0``, see the voice server).

Faults: ``close_voice(guild, code)``, ``drop_udp(seconds)``, ``server.refuse_discovery = True``.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.loopback.discord_gateway import VOICE_STATE_UPDATE, GatewaySession
from tests.loopback.discord_rest import Body, DiscordError
from tests.loopback.discord_state import (
    CONNECT,
    MOVE_MEMBERS,
    MUTE_MEMBERS,
    REQUEST_TO_SPEAK,
    SPEAK,
    STAGE_CHANNEL,
    VIEW_CHANNEL,
    VOICE_CHANNEL,
    Channel,
    Guild,
    User,
    VoiceState,
)
from tests.loopback.discord_voice_server import VoiceGrant, VoiceServer
from tests.loopback.discord_voice_session import VoiceSession

if TYPE_CHECKING:
    from aiohttp import web

    from tests.loopback.discord import DiscordEmulator

#: Discord answers op 4 after a network round trip. A zero-latency answer provokes lost wakeups in discord.py
#: 2.7.1 that no real server is quick enough to trigger: ``VoiceConnectionState._wait_for_state`` misses both
#: updates if they set and clear its asyncio.Event before its waiter task starts (connect() then hangs until
#: its timeout), and a null-channel update read before ``_expecting_disconnect`` is set counts as a kick.
OP4_ROUND_TRIP = 0.02

DISCONNECTED = 4014  # the voice close code for "moved or disconnected by someone else"
VOICE_SERVER_CRASHED = 4015  # the one close code after which a RESUME is welcome


class Voice:
    """The bot's voice presence in every guild, and the voice server it is sent to."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.server = VoiceServer(emulator)
        self.ignored_joins: list[tuple[int, int, str]] = []  # (guild id, channel id, why Discord ignored it)
        self.op4_round_trip = OP4_ROUND_TRIP
        #: Set by a test that shows a client sending audio in the clear under DAVE; otherwise any such frame fails
        #: the test (the ``discord_emulator`` fixture checks every voice session at teardown).
        self.plaintext_expected = False
        self.stage_requests: list[tuple[int, dict[str, Any]]] = []  # accepted voice-state PATCHes: (guild id, body)
        emulator.on_op(VOICE_STATE_UPDATE, self._on_voice_state_op)

    # -- the bot's op 4 ---------------------------------------------------------------------------------

    async def _on_voice_state_op(self, session: GatewaySession, d: dict[str, Any]) -> None:
        await asyncio.sleep(self.op4_round_trip)
        guild = next((g for g in self.emu.guilds if g.id == int(d["guild_id"])), None)
        if guild is None:
            self.emu.failures.append(f"gateway: op 4 for unknown guild {d['guild_id']}")
            return
        if d.get("channel_id") is None:
            await self._leave(guild, session.id, close_code=None)  # the client closes its own socket
            return
        channel = self.emu.find_channel(int(d["channel_id"]))
        refusal = self._refusal(guild, channel)
        if refusal is not None:
            self.ignored_joins.append((guild.id, int(d["channel_id"]), refusal))
            return
        assert channel is not None
        await self._join(guild, channel, session.id, self_mute=bool(d.get("self_mute")),
                         self_deaf=bool(d.get("self_deaf")))

    def _refusal(self, guild: Guild, channel: Channel | None) -> str | None:
        """Why Discord would silently ignore the bot joining ``channel``, or None."""
        if channel is None or channel.guild_id != guild.id:
            return "no such channel in this guild"
        if channel.type not in (VOICE_CHANNEL, STAGE_CHANNEL):
            return "not a voice or stage channel"
        bot_id = self.emu.bot_user.id
        permissions = guild.channel_permissions(guild.member(bot_id), channel)
        if not permissions & VIEW_CHANNEL or not permissions & CONNECT:
            return "missing VIEW_CHANNEL or CONNECT"
        others = [user_id for user_id in guild.voice_members(channel) if user_id != bot_id]
        if channel.user_limit and len(others) >= channel.user_limit and not permissions & MOVE_MEMBERS:
            return "channel full"
        return None

    async def _join(self, guild: Guild, channel: Channel, session_id: str, *, self_mute: bool = False,
                    self_deaf: bool = False) -> None:
        """Put the bot in ``channel`` and send it to the voice server with a fresh token. Staying in the same
        channel (a self-mute or self-deafen toggle) only updates the voice state: the call goes on."""
        bot_id = self.emu.bot_user.id
        previous = guild.voice_state_of(bot_id)
        staying = previous is not None and previous.channel_id == channel.id
        state = VoiceState(bot_id, channel.id, session_id, self_mute=self_mute, self_deaf=self_deaf,
                           suppress=previous.suppress if staying and previous else channel.type == STAGE_CHANNEL,
                           request_to_speak_timestamp=previous.request_to_speak_timestamp if staying and previous
                           else None)
        guild.set_voice_state(state)
        await self._dispatch_state(guild, state)
        if staying and guild.id in self.server.grants:
            return
        await self.server.end_sessions(guild.id, close_code=DISCONNECTED)
        # On a stage SPEAK does not apply: whether anyone hears the bot is its suppressed state, packet by packet.
        can_speak = channel.type == STAGE_CHANNEL or bool(
            guild.channel_permissions(guild.member(bot_id), channel) & SPEAK)
        grant = VoiceGrant(guild.id, channel.id, bot_id, session_id, secrets.token_hex(16), can_speak)
        self.server.grants[guild.id] = grant
        await self.emu.dispatch("VOICE_SERVER_UPDATE", {"token": grant.token, "guild_id": str(guild.id),
                                                        "endpoint": f"127.0.0.1:{self.server.port}"})

    async def _leave(self, guild: Guild, session_id: str, *, close_code: int | None) -> None:
        """Take the bot out of voice in ``guild``: null-channel VOICE_STATE_UPDATE, sessions ended."""
        state = VoiceState(self.emu.bot_user.id, None, session_id)
        guild.set_voice_state(state)
        self.server.grants.pop(guild.id, None)
        await self._dispatch_state(guild, state)
        await self.server.end_sessions(guild.id, close_code=close_code)

    async def _dispatch_state(self, guild: Guild, state: VoiceState) -> None:
        payload = {**state.to_payload(guild.id), "member": guild.member(state.user_id).to_payload()}
        await self.emu.dispatch("VOICE_STATE_UPDATE", payload)

    def _bot_session_id(self, guild: Guild) -> str:
        state = guild.voice_state_of(self.emu.bot_user.id)
        if state is not None:
            return state.session_id
        return next(s.id for s in reversed(self.emu.sessions) if s.owns(guild.id))

    # -- stages: Modify Current User Voice State, and the moderator's side -----------------------------------

    async def update_own_voice_state(self, request: web.Request, body: Body) -> None:
        """``PATCH /guilds/{guild_id}/voice-states/@me``, with the caveats Discord documents for it."""
        guild = next((g for g in self.emu.guilds if str(g.id) == request.match_info["guild_id"]), None)
        if guild is None:
            raise DiscordError(404, 10004, "Unknown Guild")
        data = body.json or {}
        bot = guild.member(self.emu.bot_user.id)
        state = guild.voice_state_of(bot.user.id)
        if state is None:
            raise DiscordError(404, 10065, "Unknown Voice State")
        channel = guild.channel(state.channel_id) if state.channel_id is not None else None
        if "channel_id" in data and (data["channel_id"] is None or int(data["channel_id"]) != state.channel_id):
            raise DiscordError(400, 50035, "Invalid Form Body",
                               errors={"channel_id": "must be the channel the user is in"})
        if channel is None or channel.type != STAGE_CHANNEL:
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        permissions = guild.channel_permissions(bot, channel)
        suppress = state.suppress
        requested = state.request_to_speak_timestamp
        if "suppress" in data and data["suppress"] is not None:
            if data["suppress"] is False and state.suppress and not permissions & MUTE_MEMBERS:
                raise DiscordError(403, 50013, "Missing Permissions", violation=False)
            suppress = bool(data["suppress"])
        if "request_to_speak_timestamp" in data:
            stamp = data["request_to_speak_timestamp"]
            if stamp is not None:
                if not permissions & REQUEST_TO_SPEAK:
                    raise DiscordError(403, 50013, "Missing Permissions", violation=False)
                try:
                    when = datetime.fromisoformat(stamp)
                except (TypeError, ValueError):
                    raise DiscordError(400, 50035, "Invalid Form Body",
                                       errors={"request_to_speak_timestamp": "not an ISO8601 timestamp"}) from None
                when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
                if when < datetime.now(UTC) - timedelta(seconds=30):  # "any present or future time"
                    raise DiscordError(400, 50035, "Invalid Form Body",
                                       errors={"request_to_speak_timestamp": "must be the present or the future"})
            requested = stamp
        if suppress and not state.suppress:
            requested = None  # moving oneself to the audience lowers one's hand
        if not suppress:
            requested = None
        self.stage_requests.append((guild.id, dict(data)))
        await self._set_stage_state(guild, suppress=suppress, requested=requested)
        return None

    async def _set_stage_state(self, guild: Guild, *, suppress: bool, requested: str | None) -> None:
        state = guild.voice_state_of(self.emu.bot_user.id)
        if state is None:
            raise LookupError("the bot is not in voice in this guild")
        state.suppress = suppress
        state.request_to_speak_timestamp = requested
        await self._dispatch_state(guild, state)

    def bot_state(self, guild: Guild | None = None) -> VoiceState | None:
        """The bot's voice state in ``guild`` (suppressed? hand raised?), or None out of voice."""
        return (guild or self.emu.guild).voice_state_of(self.emu.bot_user.id)

    async def invite_bot_to_speak(self, guild: Guild | None = None) -> None:
        """A stage moderator makes the bot a speaker (accepting its request, or inviting it outright)."""
        await self._set_stage_state(guild or self.emu.guild, suppress=False, requested=None)

    async def move_bot_to_audience(self, guild: Guild | None = None) -> None:
        """A stage moderator moves the bot back to the audience."""
        await self._set_stage_state(guild or self.emu.guild, suppress=True, requested=None)

    # -- test controls ----------------------------------------------------------------------------------

    async def move_member(self, user: User, channel: Channel | None, guild: Guild | None = None) -> None:
        """Move a (human) user into ``channel``, or out of voice with None, and tell the bot. Their voice client
        leaves the old call and joins the new one (a DAVE group member: ``tests.loopback.dave_listener``)."""
        guild = guild or (self.emu.guild_by_id(channel.guild_id) if channel else self.emu.guild)
        previous = guild.voice_state_of(user.id)
        state = VoiceState(user.id, None if channel is None else channel.id, f"session-{user.id}",
                           suppress=channel is not None and channel.type == STAGE_CHANNEL)
        guild.set_voice_state(state)
        await self._dispatch_state(guild, state)
        await self.server.human_moved(user.id, previous.channel_id if previous else None, state.channel_id,
                                      guild.id)

    async def move_bot(self, guild: Guild, channel: Channel) -> None:
        """A moderator drags the bot to ``channel``: new voice state, new server, old socket closed 4014."""
        await self._join(guild, channel, self._bot_session_id(guild))

    async def disconnect_bot_by_moderator(self, guild: Guild) -> None:
        """A moderator disconnects the bot: null-channel VOICE_STATE_UPDATE, then the socket closes 4014."""
        await self._leave(guild, self._bot_session_id(guild), close_code=DISCONNECTED)

    async def delete_channel(self, channel: Channel) -> None:
        """Delete a channel: everyone in it leaves voice (the bot's socket closes 4014), then CHANNEL_DELETE."""
        guild = self.emu.guild_by_id(channel.guild_id)
        for user_id in guild.voice_members(channel):
            if user_id == self.emu.bot_user.id:
                await self.disconnect_bot_by_moderator(guild)
            else:
                await self.move_member(guild.member(user_id).user, None, guild)
        guild.channels.remove(channel)
        await self.emu.dispatch("CHANNEL_DELETE", channel.to_payload())

    async def close_voice(self, guild: Guild, code: int) -> None:
        """Fault: close the bot's live voice socket with ``code``. Only 4015 leaves the session resumable."""
        session = self.session(guild)
        if code != VOICE_SERVER_CRASHED:
            await self.server.end_session(session)
        await self.server.close_ws(session, code)

    def drop_udp(self, seconds: float) -> None:
        """Fault: ignore every datagram (audio and IP discovery) for the next ``seconds``."""
        self.server.drop_until = self.emu.loop_time() + seconds

    # -- assertions -------------------------------------------------------------------------------------

    def sessions(self, guild: Guild) -> list[VoiceSession]:
        """Every voice session the bot identified in ``guild``, oldest first."""
        return self.server.guild_sessions(guild.id)

    def session(self, guild: Guild) -> VoiceSession:
        """The bot's current (or last) voice session in ``guild``."""
        sessions = self.sessions(guild)
        if not sessions:
            raise LookupError(f"the bot never identified on the voice server for guild {guild.id}")
        return sessions[-1]

    def connected(self, guild: Guild) -> bool:
        """The bot is in a voice channel of ``guild`` and its voice session is up (audio would be heard)."""
        sessions = self.sessions(guild)
        return guild.voice_state_of(self.emu.bot_user.id) is not None and bool(sessions) and sessions[-1].ready
