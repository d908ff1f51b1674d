"""Voice sessions: at most one per guild, joined and left on request, on idleness, when alone, or by Discord.

The session's state follows Discord's: whatever ends the bot's presence in a channel (``/leave``, a
moderator's disconnect, a deleted channel, a failed reconnect) ends the session, so ``/join`` always works
again afterwards. A connection lost without anyone sending the bot away (the voice server crashed and
discord.py could not resume) is followed by one fresh join a second later.

Sessions are written to a journal (the store) when they start or move, and struck out when they end for any
reason but a shutdown: after a restart the bot rejoins exactly the channels it was in when it stopped
(:meth:`VoiceSessions.rejoin`).

One guild's session (player and leave timers) is :class:`bot.voice.guild_session.VoiceSession`; discord.py's
voice client, adapted to the bot, is :class:`bot.voice.voice_client.SessionVoiceClient`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import discord

from bot.discord_internals import reconnect_failed, register_voice_client
from bot.errors import UserFacingError
from bot.i18n import ENGLISH
from bot.locks import KeyedLock
from bot.speech.models import SpeechBackend
from bot.storage.errors import StorageError
from bot.tasks import Supervisor
from bot.voice.guild_session import VoiceSession
from bot.voice.sender import PacketSender
from bot.voice.stage import audience_notice, become_speaker, is_suppressed, moved_to_audience_notice
from bot.voice.voice_client import SessionVoiceClient

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0
#: Said in the voice channel's chat when its player or reader failed and the session was ended.
CRASH_NOTICE = "Something went wrong on my side, so I left the voice channel. Use /join to bring me back."
#: After a voice connection was lost without anyone sending the bot away, how long before it joins again.
_REJOIN_DELAY = 1.0

#: A server's own (idle, alone) timeouts in seconds; None where it uses the bot's.
GuildTimeouts = Callable[[int], Awaitable[tuple[float | None, float | None]]]
GuildLanguage = Callable[[int], Awaitable[str]]


class SessionJournal(Protocol):
    """Where the channel of every live session is kept across restarts (:class:`bot.storage.Store`)."""

    async def remember_voice_session(self, guild_id: int, channel_id: int) -> None: ...

    async def forget_voice_session(self, guild_id: int, channel_id: int | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class VoiceLimits:
    idle_timeout: float
    alone_timeout: float
    max_queue: int
    stall_timeout: float


class VoiceSessions:
    """All voice sessions of the bot, keyed by guild id."""

    def __init__(
        self,
        speech: SpeechBackend,
        limits: VoiceLimits,
        *,
        on_first_packet: Callable[[float], None] | None = None,
        guild_timeouts: GuildTimeouts | None = None,
        guild_language: GuildLanguage | None = None,
        journal: SessionJournal | None = None,
    ) -> None:
        self.speech = speech
        self.limits = limits
        self.on_first_packet = on_first_packet
        self._guild_timeouts = guild_timeouts
        self._guild_language = guild_language
        self._journal = journal
        self._sessions: dict[int, VoiceSession] = {}
        self._locks: KeyedLock[int] = KeyedLock()
        self._closing = False
        self.sender = PacketSender()
        #: Leaves and session ends run in the background; kept, logged on failure, awaited on close.
        self.tasks = Supervisor("voice sessions")

    def get(self, guild_id: int) -> VoiceSession | None:
        return self._sessions.get(guild_id)

    def __len__(self) -> int:
        return len(self._sessions)

    def all(self) -> list[VoiceSession]:
        return list(self._sessions.values())

    async def language_of(self, guild_id: int) -> str:
        """What the bot's own posts in ``guild_id``'s channels are said in: the server's ``/settings language``
        (as its join and leave announcements), English when it cannot be read."""
        if self._guild_language is not None:
            try:
                return await self._guild_language(guild_id)
            except Exception:
                log.exception("could not read the language of guild %s; posting in English", guild_id)
        return ENGLISH

    async def timeouts_for(self, guild_id: int) -> tuple[float, float]:
        """(idle, alone) seconds for ``guild_id``: the server's own settings where set, else the bot's."""
        idle, alone = (None, None)
        if self._guild_timeouts is not None:
            try:
                idle, alone = await self._guild_timeouts(guild_id)
            except Exception:
                log.exception("could not read the voice timeouts of guild %s; using the defaults", guild_id)
        return (
            self.limits.idle_timeout if idle is None else idle,
            self.limits.alone_timeout if alone is None else alone,
        )

    async def join(
        self,
        channel: discord.VoiceChannel | discord.StageChannel,
        *,
        text_channel: discord.abc.Messageable | None = None,
        speak_up: bool = False,
    ) -> VoiceSession:
        """The session in ``channel``: the existing one, or a new connection after checking permissions.

        Refuses (UserFacingError) when the bot is already in another channel of the guild: it never steals
        itself away from people who are listening. ``text_channel`` (where the request came from) is where the
        session says what happens to it later. On a stage the bot then tries to become a speaker
        (:mod:`bot.voice.stage`) when it has just joined, or when ``speak_up`` (someone used ``/join``): a stage
        moderator who sent it to the audience is not overruled by the next ``/speak``. ``session.stage_role``
        says how that went, for the caller to tell people.
        """
        session, new = await self._connect(channel)
        if text_channel is not None:
            session.text_channel = text_channel
        stage = session.channel
        if isinstance(stage, discord.StageChannel) and stage.id == channel.id and (new or speak_up):
            session.stage_role = await become_speaker(stage)
        return session

    async def _connect(self, channel: discord.VoiceChannel | discord.StageChannel) -> tuple[VoiceSession, bool]:
        """The guild's session in ``channel`` and whether it is a new connection."""
        guild = channel.guild
        if self._closing:
            raise UserFacingError("I'm restarting; try again in a moment.")
        async with self._locks.hold(guild.id):
            session = self._sessions.get(guild.id)
            if session is not None and session.voice_client.is_connected():
                if session.channel is not None and session.channel.id != channel.id:
                    raise UserFacingError("I'm already in {channel} on this server.", channel=session.channel.mention)
                return session, False
            if session is not None:  # a stale session (connection lost): start afresh
                await self._drop(guild.id)
            check_can_join(channel)
            voice_client: discord.VoiceProtocol | None
            try:
                voice_client = await channel.connect(
                    timeout=CONNECT_TIMEOUT,
                    reconnect=True,
                    self_deaf=True,
                    cls=lambda client, connectable: SessionVoiceClient(
                        client, connectable, self._on_cleanup, self.sender
                    ),
                )
            except discord.ClientException:
                # discord.py already holds a connection for this guild (e.g. left over): reuse it.
                voice_client = guild.voice_client
                if not isinstance(voice_client, discord.VoiceClient):
                    raise UserFacingError("I could not join the voice channel. Try again.") from None
            except (TimeoutError, discord.ConnectionClosed, OSError):
                log.warning("voice connect failed (guild=%s channel=%s)", guild.id, channel.id)
                raise UserFacingError("I could not connect to the voice channel. Try again later.") from None
            session = VoiceSession(self, voice_client)
            if is_suppressed(guild.me, channel):  # a stage's audience: hold audio until the bot is a speaker
                session.set_suppressed(True)
            self._sessions[guild.id] = session
            session.update_alone_timer()
            log.info("joined voice (guild=%s channel=%s)", guild.id, channel.id)
            await self._remember(guild.id, channel.id)
            return session, True

    async def leave(self, guild_id: int, *, reason: str = "requested", come_back: bool = False) -> bool:
        """Disconnect and end the guild's session; False if there was none.

        The journal forgets it, unless ``come_back`` (a shutdown): then the next start rejoins the channel.
        """
        async with self._locks.hold(guild_id):
            session = self._sessions.get(guild_id)
            if session is None:
                return False
            await self._drop(guild_id)
            # Even when the connection is already down (mid-reconnect), discord.py must be told: otherwise it
            # keeps the VoiceClient registered and waits for it on shutdown.
            voice_client = session.voice_client
            if come_back and isinstance(voice_client, SessionVoiceClient) and voice_client.gateway_saturated():
                await voice_client.disconnect_without_leaving()  # shutting down: Discord drops it with the session
            else:
                await voice_client.disconnect(force=True)
            log.info("left voice (guild=%s reason=%s)", guild_id, reason)
            if not come_back:
                await self._forget(guild_id)
            return True

    async def rejoin(self, guild: discord.Guild | None, guild_id: int, channel_id: int) -> bool:
        """Come back to the channel a session was in when the bot last stopped (or lost its voice server);
        True if it is back there.

        ``guild`` is None when the bot is no longer in that server. A session that cannot come back (the server
        or the channel is gone, the bot may not connect or speak there, the connection fails) is forgotten, so
        the next start does not try again; one that is running already (a ``/join`` came first) is left alone.
        """
        if self._closing or guild_id in self._sessions:
            return False
        if guild is not None and guild.unavailable:  # a Discord outage: keep it for the next start
            return False
        channel = guild.get_channel(channel_id) if guild is not None else None
        if guild is None:
            why = "the bot is no longer in the server"
        elif not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
            why = "the channel is gone"
        else:
            try:
                session = await self.join(channel)
            except UserFacingError as exc:
                if self._closing:
                    return False
                why = exc.message
            else:
                log.info("rejoined voice (guild=%s channel=%s)", guild_id, channel_id)
                if session.stage_role is not None and (
                    notice := audience_notice(session.stage_role, channel, await self.language_of(guild_id))
                ):
                    await self.say(session, notice)
                return True
        log.info("not rejoining voice (guild=%s channel=%s): %s", guild_id, channel_id, why)
        await self._forget(guild_id, channel_id)
        return False

    async def on_moved(self, guild_id: int, channel_id: int) -> None:
        """The bot was moved to ``channel_id`` (discord.py follows by itself): remember where it is now."""
        async with self._locks.hold(guild_id):
            if guild_id in self._sessions and not self._closing:
                await self._remember(guild_id, channel_id)

    async def on_suppress_changed(self, guild_id: int, suppressed: bool) -> None:
        """The bot's stage state changed (it became a speaker, or a stage moderator sent it to the audience):
        play or hold, and say so when what it was doing stops."""
        session = self._sessions.get(guild_id)
        if session is None:
            return
        if session.set_suppressed(suppressed) and session.channel is not None:
            log.info("moved to the stage audience (guild=%s)", guild_id)
            await self.say(session, moved_to_audience_notice(session.channel, await self.language_of(guild_id)))
        elif not suppressed:
            log.info("speaking on the stage (guild=%s)", guild_id)

    async def say(self, session: VoiceSession, text: str) -> None:
        """Post ``text`` (pinging nobody) where the session reports; a failure is only logged."""
        channel = session.notice_channel
        if channel is None:
            return
        try:
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.info("could not post a voice notice (guild=%s): %s %s", session.guild_id, exc.status, exc.text)

    async def _remember(self, guild_id: int, channel_id: int) -> None:
        if self._journal is None:
            return
        try:
            await self._journal.remember_voice_session(guild_id, channel_id)
        except StorageError as exc:
            log.warning("could not remember the voice session (guild=%s): %s", guild_id, exc)

    async def _forget(self, guild_id: int, channel_id: int | None = None) -> None:
        if self._journal is None:
            return
        try:
            await self._journal.forget_voice_session(guild_id, channel_id)
        except StorageError as exc:
            log.warning("could not forget the voice session (guild=%s): %s", guild_id, exc)

    async def _drop(self, guild_id: int) -> None:
        session = self._sessions.pop(guild_id, None)
        if session is not None:
            await session.close()


    def _on_cleanup(self, voice_client: discord.VoiceClient) -> None:
        """discord.py gave up the connection: end the session that used it (unless it already ended)."""
        guild_id = voice_client.guild.id
        session = self._sessions.get(guild_id)
        if session is not None and session.voice_client is voice_client:
            self.tasks.spawn(self._end_lost_session(session), name=f"voice-end-{guild_id}")

    def end_after_failure(self, session: VoiceSession) -> None:
        """Something serving the session failed (its player, its reader): leave, and say so in the channel
        (``/join`` starts a fresh session)."""
        if not self._closing:
            self.tasks.spawn(self._end_after_failure(session), name=f"voice-failed-{session.guild_id}")

    async def _end_after_failure(self, session: VoiceSession) -> None:
        channel = session.channel
        if self._sessions.get(session.guild_id) is not session or not await self.leave(
            session.guild_id, reason="failure"
        ):
            return
        if isinstance(channel, discord.abc.Messageable):
            try:
                await channel.send(CRASH_NOTICE, allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException as exc:
                log.info("could not say why the voice session ended (guild=%s): %s", session.guild_id, exc.status)

    async def _end_lost_session(self, session: VoiceSession) -> None:
        come_back_to: discord.VoiceChannel | discord.StageChannel | None = None
        async with self._locks.hold(session.guild_id):
            if self._sessions.get(session.guild_id) is not session:
                return
            channel = session.channel
            await self._drop(session.guild_id)
            if self._closing:  # a connection lost while shutting down is the shutdown's own doing
                log.info("voice session ended by Discord (guild=%s)", session.guild_id)
                return
            if reconnect_failed(session.voice_client) and channel is not None:
                # Discord's voice server went away and discord.py could not resume: a fresh join gets a new one.
                log.warning("voice connection lost and not resumed; joining again (guild=%s)", session.guild_id)
                come_back_to = channel
            else:
                log.info("voice session ended by Discord (guild=%s)", session.guild_id)
                await self._forget(session.guild_id)
        if come_back_to is not None:
            await asyncio.sleep(_REJOIN_DELAY)
            await self.rejoin(come_back_to.guild, session.guild_id, come_back_to.id)

    async def adopt(self, client: discord.Client) -> None:
        """After the bot identified again (a new gateway session, not a RESUME), keep the voice sessions working.

        discord.py then forgets its voice clients (``ConnectionState.parse_ready`` clears them) and rebuilds its
        guilds, while Discord keeps the bot in its channels with the voice connections up. Each session's client
        is handed back to discord.py, so that the voice events for the bot (a leave's confirmation, a move, a
        moderator's disconnect) reach it again, and pointed at the rebuilt channel, whose members the leave
        timers read. Whether the bot is still connected is left to discord.py's own reconnect logic (its voice
        state can be briefly empty during one); only a session whose guild or channel is gone is left.
        """
        adopted = 0
        for session in self.all():
            voice_client = session.voice_client
            guild = client.get_guild(session.guild_id)
            old = voice_client.channel
            channel = guild.get_channel(old.id) if guild is not None and old is not None else None
            if guild is not None and voice_client not in client.voice_clients:
                register_voice_client(client, guild.id, voice_client)
                adopted += 1
            if not isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
                await self.leave(session.guild_id, reason="channel gone after reconnecting")
                continue
            voice_client.channel = channel
            session.update_alone_timer()
        if adopted:
            log.info("%d voice sessions taken over by the new gateway session", adopted)

    def on_members_changed(self, guild_id: int) -> None:
        if session := self._sessions.get(guild_id):
            session.update_alone_timer()

    async def close(self) -> None:
        """Leave every channel (remembering each, to come back after the restart), after any join or leave
        already under way has finished.

        A leave in flight still holds its guild's lock; discord.py mishandles a second disconnect of the
        same VoiceClient (it waits its whole timeout), so shutdown must not start one.
        """
        self._closing = True
        for guild_id in list(self._sessions):
            await self.leave(guild_id, reason="shutdown", come_back=True)
        await self._locks.wait_idle()
        for guild_id in list(self._sessions):  # joined (e.g. rejoined at start-up) while the others were left
            await self.leave(guild_id, reason="shutdown", come_back=True)
        await self.tasks.close()
        await asyncio.to_thread(self.sender.close)


def check_can_join(channel: discord.VoiceChannel | discord.StageChannel) -> None:
    """Refuse with a clear message when Discord would not let the bot in or would not let it speak."""
    me = channel.guild.me
    permissions = channel.permissions_for(me)
    if not permissions.connect:
        raise UserFacingError("I don't have permission to connect to {channel}.", channel=channel.mention)
    # On a stage Speak does not apply: the bot becomes a speaker afterwards (bot.voice.stage).
    if not permissions.speak and not isinstance(channel, discord.StageChannel):
        raise UserFacingError("I don't have permission to speak in {channel}.", channel=channel.mention)
    limit = channel.user_limit
    if limit and len(channel.members) >= limit and not permissions.move_members:
        raise UserFacingError("{channel} is full.", channel=channel.mention)
