"""The read-aloud service: decides, queues, synthesizes ahead and hands messages to the guild's player.

Each guild with something to read has a :class:`GuildReader`: a fair, held queue (:mod:`bot.readaloud.queue`)
and one task that gives the player one message at a time. While a message plays, the next eligible one is
already being synthesized (through the bot's :class:`~bot.speech_service.SpeechService`, whose audio cache the
playback then joins or hits), so playback stays gapless without
committing the player to a message that may still be deleted or edited. Handing over one at a time is what
lets a deletion drop a waiting message, an edit change it, and fairness apply to messages that arrive late.

Discord objects never reach this module: the cog passes :class:`MessageFacts` and a function that builds the
:class:`MessageInput` once the spoken names are known. Message text lives in memory only until it is read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from datetime import UTC, datetime

from bot.audio.formats import AudioFormat
from bot.errors import UserFacingError
from bot.policy import resolve_options
from bot.readaloud.filters import MessageFacts, Skip, may_autojoin, skip_reason
from bot.readaloud.queue import Entry, FairQueue
from bot.speech.errors import SpeechError
from bot.speech.models import (
    MAX_INPUT_CHARS,
    SpeechRequest,
    SpeechStream,
    read_all,
    validate_request,
)
from bot.storage import DictionaryEntry, GuildSettings, Store, UserPrefs
from bot.storage.models import NameMode, SayName
from bot.text import (
    CleaningOptions,
    MessageInput,
    apply_dictionary,
    clean_message,
    display_name_for_speech,
    should_prefix_name,
    truncate,
)
from bot.voice.player import PlayItem, QueueFullError
from bot.voice.sessions import VoiceSessions

if TYPE_CHECKING:
    from bot.speech_service import SpeechService

log = logging.getLogger(__name__)

#: The backlog speed-up applies once this many messages wait (the one about to play included).
BACKLOG_THRESHOLD = 4
DISCORD_EPOCH_MS = 1_420_070_400_000
#: Read-aloud asks for Ogg Opus first (passed through without transcoding); the request is for playback, so a
#: server that cannot make it serves wav or pcm instead (``bot.speech.client``).
READ_FORMAT = AudioFormat.OPUS

#: Builds the message from the author's spoken name and the server's name mode (for mentioned members and the
#: author replied to); the cog closes over the discord.Message.
InputBuilder = Callable[[str, NameMode], MessageInput]


@dataclass(frozen=True, slots=True)
class Names:
    """The names a member goes by; :func:`spoken_name` picks one according to the server's name mode."""

    display: str
    nickname: str | None
    username: str


def spoken_name(names: Names, mode: NameMode, chosen: str | None) -> str:
    """The user's own spoken name if they set one, else the name the server's mode asks for."""
    if chosen:
        return chosen
    if mode is NameMode.USERNAME:
        return names.username
    if mode is NameMode.NICKNAME:
        return names.nickname or names.display
    return names.display


@dataclass(frozen=True, slots=True)
class Utterance:
    """A queued message (or announcement, ``message`` None and ``text`` set) with how to say it."""

    message: MessageInput | None
    text: str | None
    options: CleaningOptions
    dictionary: tuple[DictionaryEntry, ...]
    voice: str
    speed: float
    instructions: str | None
    say_name: SayName
    name_window: float
    backlog_speedup: float


def cleaning_options(settings: GuildSettings) -> CleaningOptions:
    return CleaningOptions(
        emoji_mode=settings.emoji_mode.value,  # type: ignore[arg-type]
        link_mode=settings.link_mode.value,  # type: ignore[arg-type]
        code_mode=settings.code_mode.value,  # type: ignore[arg-type]
        max_chars=settings.max_message_chars,
        max_repeat=settings.max_repeat_chars,
    )


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
        self.voices = speaking.settings.speech_voices
        self.speeds = speaking.settings.speed_range
        self.hold = hold
        self.queue_limit = queue_limit
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self._readers: dict[int, GuildReader] = {}
        # Deciding a message awaits the store, which can take longer for one message than for the next; one
        # lock per guild (asyncio locks are first come, first served) keeps messages in the order they came.
        self._deciding: dict[int, asyncio.Lock] = {}

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
        )

    async def on_message(
        self, guild_id: int, message_id: int, facts: MessageFacts, names: Names, build: InputBuilder
    ) -> Skip | None:
        """Queue the message if it is to be read; returns why not otherwise."""
        async with self._deciding.setdefault(guild_id, asyncio.Lock()):
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
        async with self._deciding.setdefault(guild_id, asyncio.Lock()):  # after the message itself is queued
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
        name = display_name_for_speech(
            spoken_name(names, settings.name_mode, prefs.spoken_name), emoji_mode=settings.emoji_mode.value
        )
        text = f"{name} {'joined' if joined else 'left'}."
        # Announcements speak in the server's voice, not the member's.
        server = resolve_options(self.speaking.settings, settings, UserPrefs())
        utterance = await self._utterance(guild_id, settings, server.voice, server.speed, server.instructions,
                                          None, text)
        # Ordered among the member's messages by the time it happened, like a snowflake.
        order = int((datetime.now(UTC).timestamp() * 1000 - DISCORD_EPOCH_MS)) << 22
        self._guild(guild_id).push(-next(_announcement_ids), user_id, utterance, order=order)

    def forget(self, guild_id: int) -> None:
        """The bot left voice in this guild: nothing waiting there will be read."""
        if reader := self._readers.pop(guild_id, None):
            if waiting := len(reader.queue):
                log.info("read-aloud stopped (guild=%s): %d waiting messages not read", guild_id, waiting)
            reader.close()

    async def close(self) -> None:
        """Stop reading everywhere (idempotent); usage already counted is written by the ledger."""
        for guild_id in list(self._readers):
            self.forget(guild_id)

    def _guild(self, guild_id: int) -> GuildReader:
        reader = self._readers.get(guild_id)
        if reader is None:
            reader = self._readers[guild_id] = GuildReader(self, guild_id)
        return reader

    def _finished(self, reader: GuildReader) -> None:
        if self._readers.get(reader.guild_id) is reader:
            del self._readers[reader.guild_id]

    async def fetch(self, guild_id: int, user_id: int, request: SpeechRequest) -> SpeechStream:
        """The audio of ``request``, streaming, admitted and counted by the speech service like any request; a
        budget or rate refusal is a :class:`SpeechError`."""
        settings = await self.store.get_guild_settings(guild_id)
        try:
            admitted = await self.speaking.admit_request(guild_id, user_id, request, settings)
        except UserFacingError as exc:
            log.info("read-aloud message not synthesized (guild=%s user=%s): budget or rate", guild_id, user_id)
            raise SpeechError(exc.message) from None
        # Chat audio stays in memory: what was said in a channel is never written to disk.
        served = await self.speaking.open(admitted, persist=False, batched=True)
        return served.stream


#: Announcements have no message id; negative ids never collide with Discord's.
_announcement_ids = itertools.count(1)


class GuildReader:
    """One guild's queue and the task that feeds its player."""

    def __init__(self, service: ReadAloud, guild_id: int) -> None:
        self.service = service
        self.guild_id = guild_id
        self.queue: FairQueue[Utterance] = FairQueue(limit=service.queue_limit, hold=service.hold)
        self.dropped = 0  # to make room (full queue), for logs and the load test
        self._wakeup = asyncio.Event()
        self._last_author: int | None = None
        self._last_time: float | None = None
        self._playing: tuple[int, PlayItem] | None = None  # (message id, item in the player)
        self._prefetches: set[asyncio.Task[object]] = set()
        self._task = asyncio.create_task(self._run(), name=f"read-aloud-{guild_id}")

    def push(self, message_id: int, author_id: int, utterance: Utterance, *, order: int | None = None) -> None:
        dropped = self.queue.push(message_id, author_id, utterance, self.service.clock(), order)
        if dropped is not None:
            self.dropped += 1
            log.info("read-aloud queue full (guild=%s): dropped a message of user=%s", self.guild_id, dropped.author_id)
        self._wakeup.set()

    def edit(self, message_id: int, utterance: Utterance) -> None:
        if self.queue.update(message_id, utterance, self.service.clock()):
            self._wakeup.set()

    def delete(self, message_ids: Iterable[int]) -> None:
        for message_id in message_ids:
            self.queue.remove(message_id)
            playing = self._playing
            if playing is not None and playing[0] == message_id:
                session = self.service.sessions.get(self.guild_id)
                if session is not None:
                    session.player.skip_if(playing[1].id)

    def close(self) -> None:
        self.queue.clear()
        self._task.cancel()
        for task in self._prefetches:
            task.cancel()

    async def _run(self) -> None:
        done: asyncio.Event | None = None  # set when the item handed to the player has left it
        try:
            while True:
                entry = await self._wait_ready()
                if done is not None and not done.is_set():
                    self._prefetch(entry)  # synthesis overlaps the current playback
                    await done.wait()
                entry = self.queue.pop_ready(self.service.clock())
                if entry is None:  # deleted (or pushed back by an edit) while the previous item played
                    continue
                try:
                    request = self._request(entry, waiting=len(self.queue) + 1, commit=True)
                except Exception:  # one unreadable message must not stop reading in this guild
                    log.exception("read-aloud could not prepare a message (guild=%s)", self.guild_id)
                    continue
                if request is None:
                    continue
                done = self._play(entry, request)
                if done is None and self.service.sessions.get(self.guild_id) is None:
                    break
        finally:
            self.service._finished(self)

    async def _wait_ready(self) -> Entry[Utterance]:
        while True:
            now = self.service.clock()
            if (entry := self.queue.peek_ready(now)) is not None:
                return entry
            at = self.queue.next_eligible_at()
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), None if at is None else max(0.0, at - now))
            except TimeoutError:
                pass

    def _play(self, entry: Entry[Utterance], request: SpeechRequest) -> asyncio.Event | None:
        session = self.service.sessions.get(self.guild_id)
        if session is None:
            self.queue.clear()
            return None
        done = asyncio.Event()
        item = PlayItem(request, entry.author_id, open_stream=lambda: self._open(entry.author_id, request))

        def finished() -> None:
            if self._playing is not None and self._playing[1] is item:
                self._playing = None
            done.set()

        item.on_done = finished
        try:
            session.enqueue(item)
        except QueueFullError:
            log.info("voice queue full (guild=%s): a read-aloud message was dropped", self.guild_id)
            return None
        self._playing = (entry.message_id, item)
        return done

    async def _open(self, user_id: int, request: SpeechRequest) -> SpeechStream:
        return await self.service.fetch(self.guild_id, user_id, request)

    def _prefetch(self, entry: Entry[Utterance]) -> None:
        try:
            request = self._request(entry, waiting=len(self.queue), commit=False)
        except Exception:
            return  # reported when the message itself is taken
        if request is None:
            return
        self.queue.protect(entry.message_id)
        task = asyncio.create_task(self._quiet_fetch(entry.author_id, request))
        self._prefetches.add(task)
        task.add_done_callback(self._prefetches.discard)

    async def _quiet_fetch(self, user_id: int, request: SpeechRequest) -> None:
        try:
            # Read to the end: the cache keeps the download going only while someone reads it.
            await read_all(await self.service.fetch(self.guild_id, user_id, request))
        except SpeechError:
            pass  # the playback that follows asks again and reports it
        except Exception:
            log.exception("read-aloud prefetch failed (guild=%s)", self.guild_id)

    def _request(self, entry: Entry[Utterance], *, waiting: int, commit: bool) -> SpeechRequest | None:
        """The speech request for ``entry``; ``commit`` records it as the last one read (for "Alice said")."""
        u = entry.payload
        if u.message is None:
            text = u.text or ""
            author: int | None = None
        else:
            include = u.say_name is SayName.ALWAYS or (
                u.say_name is SayName.ON_CHANGE
                and should_prefix_name(entry.author_id, entry.arrived_at, self._last_author, self._last_time,
                                       u.name_window)
            )
            text = clean_message(u.message, u.options, include_author=include)
            author = entry.author_id
        if commit:
            self._last_author, self._last_time = author, entry.arrived_at
        text = truncate(apply_dictionary(text, u.dictionary), MAX_INPUT_CHARS).strip()
        if not text:
            return None
        speed = u.speed
        if waiting >= BACKLOG_THRESHOLD:  # as fast as asked, within what the engine can do
            speed = max(speed, min(self.service.speeds.high, round(speed * u.backlog_speedup, 2)))
        try:
            return validate_request(
                SpeechRequest(text=text, voice=u.voice, format=READ_FORMAT, speed=speed, instructions=u.instructions,
                              playback=True),
                self.service.voices,
                speeds=self.service.speeds,
            )
        except SpeechError:
            log.warning("read-aloud request refused before sending (guild=%s)", self.guild_id)
            return None
