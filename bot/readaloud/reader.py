"""The read-aloud service: decides, queues, synthesizes ahead and hands messages to the guild's player.

Each guild with something to read has a :class:`GuildReader`: a fair, held queue (:mod:`bot.readaloud.queue`)
and one task that gives the player one message at a time. While a message plays, the next eligible one is
already being synthesized (through the bot's :class:`~bot.speech_service.SpeechService`, whose audio cache the
playback then joins or hits), so playback stays gapless without
committing the player to a message that may still be deleted or edited. Handing over one at a time is what
lets a deletion drop a waiting message, an edit change it, and fairness apply to messages that arrive late.

The queued data is :mod:`bot.readaloud.utterance`; one guild's queue and feeding task is
:class:`~bot.readaloud.guild_reader.GuildReader`.

Discord objects never reach this module: the cog passes :class:`MessageFacts` and a function that builds the
:class:`MessageInput` once the spoken names are known. Message text lives in memory only until it is read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.errors import UserFacingError
from bot.i18n import translate
from bot.locks import KeyedLock
from bot.policy import resolve_options
from bot.readaloud.early import EarlyStats
from bot.readaloud.filters import MessageFacts, Skip, may_autojoin, skip_reason
from bot.readaloud.guild_reader import GuildReader
from bot.readaloud.utterance import InputBuilder, Names, Utterance, cleaning_options, spoken_name, with_dictionary
from bot.setting_choices import HoldMode
from bot.speech.errors import SpeechError
from bot.speech.models import SpeechRequest, SpeechStream
from bot.storage import GuildSettings, Store, UserPrefs
from bot.tasks import Supervisor
from bot.text import MessageInput, clean_message, display_name_for_speech
from bot.voice.sessions import VoiceSessions

if TYPE_CHECKING:
    from bot.speech_service import Admitted, SpeechService

log = logging.getLogger(__name__)

DISCORD_EPOCH_MS = 1_420_070_400_000
#: Announcements have no message id; negative ids never collide with Discord's.
_announcement_ids = itertools.count(1)

class ReadAloud:
    """Read-aloud for every guild; the cog forwards Discord events here."""

    def __init__(
        self,
        sessions: VoiceSessions,
        store: Store,
        speaking: SpeechService,
        *,
        hold: float = 1.0,
        queue_limit: int = 20,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.speaking = speaking
        self.speeds = speaking.settings.speed_range
        self.hold = hold
        self.queue_limit = queue_limit
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self._readers: dict[int, GuildReader] = {}
        # Deciding a message awaits the store, which can take longer for one message than for the next; one
        # lock per guild (asyncio locks are first come, first served) keeps messages in the order they came.
        self._deciding: KeyedLock[int] = KeyedLock()
        #: Each guild's reader loop, prefetches and early syntheses: kept, logged on failure, awaited on close.
        self.tasks = Supervisor("read-aloud")
        #: Synthesis during the hold, summed over guilds (``bot.readaloud.early``).
        self.early = EarlyStats()

    def reader(self, guild_id: int) -> GuildReader | None:
        return self._readers.get(guild_id)

    def _voice_channel_id(self, guild_id: int) -> int | None:
        session = self.sessions.get(guild_id)
        channel = session.channel if session is not None else None
        return channel.id if channel is not None else None

    async def _refused(self, guild_id: int, user_id: int, role_ids: frozenset[int]) -> bool:
        """Mutes (and roles once more) by the same rules as ``/speak``."""
        try:
            await self.speaking.check_member(guild_id, user_id, role_ids)
        except UserFacingError:
            return True
        return False

    async def _decide(
        self, guild_id: int, facts: MessageFacts, names: Names, build: InputBuilder
    ) -> tuple[Utterance | None, Skip | None]:
        voice_channel_id = self._voice_channel_id(guild_id)
        if voice_channel_id is None:  # most messages, on most servers: decided without touching the store
            return None, Skip.NOT_IN_VOICE
        if await self.speaking.blocked(guild_id, facts.author_id):  # never read: nothing queued, nothing sent
            return None, Skip.BLOCKED
        settings = await self.store.get_guild_settings(guild_id)
        reason = skip_reason(facts, settings, voice_channel_id)
        if reason is None and await self._refused(guild_id, facts.author_id, facts.role_ids):
            reason = Skip.MUTED
        if reason is not None:
            return None, reason
        prefs = await self.store.get_user_prefs(facts.author_id, guild_id)
        message = build(spoken_name(names, settings.name_mode, prefs.spoken_name), settings.name_mode)
        if not clean_message(message, cleaning_options(settings)):
            return None, Skip.EMPTY
        voice = await self.speaking.options_for(guild_id, facts.author_id, settings)
        return await self._utterance(guild_id, settings, voice.voice, voice.speed, voice.instructions, message), None

    async def message_text(self, guild_id: int, author_id: int, names: Names, build: InputBuilder) -> str:
        """A message's text as read-aloud says it, without "Alice said": the server's name, emoji, link and code
        settings, attachments described, its dictionary and the length limit. For speaking one message on
        request ("Speak this message"); "" when nothing is left to say."""
        settings = await self.store.get_guild_settings(guild_id)
        prefs = await self.store.get_user_prefs(author_id, guild_id)
        message = build(spoken_name(names, settings.name_mode, prefs.spoken_name), settings.name_mode)
        text = clean_message(message, cleaning_options(settings))
        return with_dictionary(text, await self.store.list_entries(guild_id))

    async def _utterance(
        self,
        guild_id: int,
        settings: GuildSettings,
        voice: str,
        speed: float,
        instructions: str | None,
        message: MessageInput | None,
        text: str | None = None,
    ) -> Utterance:
        return Utterance(
            message=message,
            text=text,
            options=cleaning_options(settings),
            dictionary=tuple(await self.store.list_entries(guild_id)),
            voice=voice,
            speed=speed,
            instructions=instructions,
            say_name=settings.say_name,
            name_window=float(settings.name_repeat_window),
            backlog_speedup=settings.backlog_speedup,
            hold=self.hold if settings.hold_seconds is None else settings.hold_seconds,
            early=settings.hold_mode is HoldMode.EARLY,
        )

    async def on_message(
        self, guild_id: int, message_id: int, facts: MessageFacts, names: Names, build: InputBuilder
    ) -> Skip | None:
        """Queue the message if it is to be read; returns why not otherwise."""
        async with self._deciding.hold(guild_id):
            utterance, reason = await self._decide(guild_id, facts, names, build)
            if utterance is None:
                log.debug("not read (guild=%s message=%s): %s", guild_id, message_id, reason)
                return reason
            self._guild(guild_id).push(message_id, facts.author_id, utterance)
        return None

    async def on_edit(
        self, guild_id: int, message_id: int, facts: MessageFacts, names: Names, build: InputBuilder
    ) -> None:
        """A waiting message is read in its new form (or dropped if it no longer qualifies)."""
        async with self._deciding.hold(guild_id):  # after the message itself is queued
            reader = self._readers.get(guild_id)
            if reader is None or message_id not in reader.queue:
                return
            utterance, reason = await self._decide(guild_id, facts, names, build)
            if utterance is None:
                log.debug("edited message dropped (guild=%s message=%s): %s", guild_id, message_id, reason)
                reader.delete([message_id])
            else:
                reader.edit(message_id, utterance)

    def on_delete(self, guild_id: int, message_ids: Iterable[int]) -> None:
        """Deleted messages are dropped if waiting and stopped if playing."""
        if reader := self._readers.get(guild_id):
            reader.delete(message_ids)

    async def may_autojoin(self, guild_id: int, user_id: int, *, is_bot: bool, role_ids: frozenset[int]) -> bool:
        """Whether this member joining voice should bring the bot (the caller checks the bot is not in voice)."""
        settings = await self.store.get_guild_settings(guild_id)
        if not may_autojoin(settings, is_bot=is_bot, role_ids=role_ids):
            return False
        return not await self._refused(guild_id, user_id, role_ids)

    async def announce(self, guild_id: int, user_id: int, names: Names, joined: bool) -> None:
        """Say "Alice joined" / "Alice left" when the server turned announcements on."""
        settings = await self.store.get_guild_settings(guild_id)
        if not settings.announce_joins or self._voice_channel_id(guild_id) is None:
            return
        prefs = await self.store.get_user_prefs(user_id, guild_id)
        language = settings.language.value
        name = display_name_for_speech(
            spoken_name(names, settings.name_mode, prefs.spoken_name), emoji_mode=settings.emoji_mode,
            fallback=translate(language, "someone"), language=language,
        )
        text = translate(language, "{name} joined.", name=name) if joined else translate(language, "{name} left.",
                                                                                           name=name)
        # Announcements speak in the server's voice, not the member's.
        server = resolve_options(self.speaking.settings, settings, UserPrefs())
        utterance = await self._utterance(guild_id, settings, server.voice, server.speed, server.instructions,
                                          None, text)
        # Ordered among the member's messages by the time it happened, like a snowflake.
        order = int(datetime.now(UTC).timestamp() * 1000 - DISCORD_EPOCH_MS) << 22
        self._guild(guild_id).push(-next(_announcement_ids), user_id, utterance, order=order)

    @property
    def voices(self) -> tuple[str, ...]:
        """The voices offered now (refreshed while the bot runs), among which distinct voices are chosen."""
        return self.speaking.voices

    def forget(self, guild_id: int) -> None:
        """The bot left voice in this guild: nothing waiting there will be read."""
        if reader := self._readers.pop(guild_id, None):
            if waiting := len(reader.queue):
                log.info("read-aloud stopped (guild=%s): %d waiting messages not read", guild_id, waiting)
            reader.close()

    async def close(self) -> None:
        """Stop reading everywhere and wait until every reader has stopped (idempotent); usage already counted
        is written by the ledger."""
        for guild_id in list(self._readers):
            self.forget(guild_id)
        await self.tasks.close()

    def _guild(self, guild_id: int) -> GuildReader:
        reader = self._readers.get(guild_id)
        if reader is None:
            reader = self._readers[guild_id] = GuildReader(self, guild_id)
        return reader

    def reader_finished(self, reader: GuildReader) -> None:
        if self._readers.get(reader.guild_id) is reader:
            del self._readers[reader.guild_id]

    def reader_crashed(self, reader: GuildReader) -> None:
        """A guild's reader loop failed (a bug; logged by the supervisor): what it held is dropped and the voice
        session ends with a word in the channel, so nobody waits for messages that will never be read."""
        self.reader_finished(reader)
        reader.close()
        if (session := self.sessions.get(reader.guild_id)) is not None:
            self.sessions.end_after_failure(session)

    async def fetch(self, guild_id: int, user_id: int, request: SpeechRequest) -> SpeechStream:
        """The audio of ``request``, streaming, admitted and counted by the speech service like any request; a
        budget or rate refusal is a :class:`SpeechError`."""
        return await self.open(await self.admit(guild_id, user_id, request))

    async def admit(self, guild_id: int, user_id: int, request: SpeechRequest) -> Admitted:
        """:meth:`fetch`'s first half: the rate and the budgets reserved (a :class:`SpeechError` if refused)."""
        settings = await self.store.get_guild_settings(guild_id)
        try:
            return await self.speaking.admit_request(guild_id, user_id, request, settings)
        except UserFacingError as exc:
            log.info("read-aloud message not synthesized (guild=%s user=%s): budget or rate", guild_id, user_id)
            raise SpeechError(exc.text) from None

    async def open(self, admitted: Admitted) -> SpeechStream:
        """:meth:`fetch`'s second half: the audio, the reservation settled once the engine answered (released if
        this is cancelled before)."""
        # Chat audio stays in memory: what was said in a channel is never written to disk.
        served = await self.speaking.open(admitted, persist=False, batched=True)
        return served.stream
