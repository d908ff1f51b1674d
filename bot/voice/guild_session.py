"""One guild's voice session: the bot in one channel, its player and its leave timers (idle, alone).

Kept apart from :class:`~bot.voice.sessions.VoiceSessions`, which joins, leaves and rejoins across guilds:
a session only plays what it is given and asks its manager to leave when a timer runs out.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import discord

from bot.voice.player import GuildPlayer, PlayItem
from bot.voice.stage import StageRole

if TYPE_CHECKING:
    from bot.voice.sessions import VoiceSessions


class VoiceSession:
    """The bot in one voice channel of one guild, with its player and its leave timers."""

    def __init__(self, manager: VoiceSessions, voice_client: discord.VoiceClient) -> None:
        self.manager = manager
        self.voice_client = voice_client
        self.guild_id = voice_client.guild.id
        limits = manager.limits
        self.player = GuildPlayer(
            voice_client,
            manager.speech,
            max_queue=limits.max_queue,
            stall_timeout=limits.stall_timeout,
            on_idle=self._start_idle_timer,
            on_first_packet=manager.on_first_packet,
            on_crash=lambda: manager.end_after_failure(self),
        )
        self._idle_timer: asyncio.Task[None] | None = None
        self._alone_timer: asyncio.Task[None] | None = None
        #: Where to say what happens to the session (a stage moderator's doing): the channel the session was
        #: started from, else the voice channel's own chat.
        self.text_channel: discord.abc.Messageable | None = None
        #: In a stage's audience: nobody hears the bot, so the player holds its queue.
        self.suppressed = False
        #: On a stage: what the bot could do about being heard when it last tried (None elsewhere).
        self.stage_role: StageRole | None = None

    @property
    def channel(self) -> discord.VoiceChannel | discord.StageChannel | None:
        """The channel the session is in (discord.py types it as any ``Connectable``; a guild's is one of these)."""
        return cast("discord.VoiceChannel | discord.StageChannel | None", self.voice_client.channel)

    @property
    def notice_channel(self) -> discord.abc.Messageable | None:
        channel = self.channel
        return self.text_channel or (channel if isinstance(channel, discord.abc.Messageable) else None)

    def set_suppressed(self, suppressed: bool) -> bool:
        """Follow the bot's stage state: hold the player in the audience, play as a speaker. True when this
        sent a speaking session to the audience (what it was saying was cut off)."""
        was = self.suppressed
        self.suppressed = suppressed
        if suppressed:
            if not was:
                self.stage_role = StageRole.AUDIENCE  # until it tries again (a /join) or is invited
            self.player.hold()
        else:
            self.player.release()
            self.stage_role = StageRole.SPEAKER if self.stage_role is not None else None
        return suppressed and not was

    @property
    def waiting_to_speak(self) -> bool:
        """In a stage's audience and not on its way to the stage: what is queued waits for a stage moderator."""
        return self.suppressed and self.stage_role is not StageRole.SPEAKER

    def enqueue(self, item: PlayItem) -> int:
        self._cancel_idle_timer()
        return self.player.enqueue(item)

    def _start_idle_timer(self) -> None:
        self._cancel_idle_timer()
        self._idle_timer = asyncio.create_task(self._leave_after("idle"), name=f"voice-idle-{self.guild_id}")

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def update_alone_timer(self) -> None:
        """Start the alone timer when no human is left in the channel; stop it when one comes back."""
        channel = self.voice_client.channel
        humans = [m for m in getattr(channel, "members", []) if not m.bot]
        if humans:
            if self._alone_timer is not None:
                self._alone_timer.cancel()
                self._alone_timer = None
        elif self._alone_timer is None:
            self._alone_timer = asyncio.create_task(self._leave_after("alone"), name=f"voice-alone-{self.guild_id}")

    async def _leave_after(self, reason: str) -> None:
        """Wait the server's timeout (read when the timer starts, so a moderator's change applies), then leave.

        The leave runs as its own task: leaving closes this session, which cancels this timer.
        """
        idle, alone = await self.manager.timeouts_for(self.guild_id)
        await asyncio.sleep(idle if reason == "idle" else alone)
        self.manager.tasks.spawn(self.manager.leave(self.guild_id, reason=reason), name=f"voice-leave-{self.guild_id}")

    async def close(self) -> None:
        """Stop playback and timers (idempotent); the caller disconnects."""
        self._cancel_idle_timer()
        if self._alone_timer is not None:
            self._alone_timer.cancel()
            self._alone_timer = None
        await self.player.close()
