"""One guild's read-aloud: its fair, held queue and the task that hands the player one message at a time.

In the ``early`` hold mode, a message that will be read as soon as its hold ends (nothing else waiting, no
read-aloud message playing) is synthesized during its hold (:mod:`bot.readaloud.early`): the player gets that
stream when the hold is over. While a message plays, the next eligible one is synthesized ahead (the playback
then joins or hits the audio cache). Kept apart from :class:`~bot.readaloud.reader.ReadAloud`, which decides
what is read across guilds; this module turns queued :class:`~bot.readaloud.utterance.Utterance` s into speech
requests, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.audio.formats import AudioFormat
from bot.i18n import ENGLISH
from bot.readaloud.early import EarlySynthesis, Waste
from bot.readaloud.queue import Entry, FairQueue
from bot.readaloud.utterance import Utterance, with_dictionary
from bot.setting_choices import SayName
from bot.speech.errors import SpeechError
from bot.speech.models import SpeechRequest, SpeechStream, read_all, validate_request
from bot.text import clean_message, should_prefix_name
from bot.voice.player import PlayItem, QueueFullError

if TYPE_CHECKING:
    from bot.readaloud.reader import ReadAloud

log = logging.getLogger(__name__)

#: The backlog speed-up applies once this many messages wait (the one about to play included).
BACKLOG_THRESHOLD = 4
#: Read-aloud asks for Ogg Opus first (passed through without transcoding); the request is for playback, so a
#: server that cannot make it serves wav or pcm instead (``bot.speech.client``).
READ_FORMAT = AudioFormat.OPUS


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
        self._prefetches: set[asyncio.Task[None]] = set()
        self._early: dict[int, EarlySynthesis] = {}  # message id → its synthesis during the hold
        self._task = service.tasks.spawn(self._run(), name=f"read-aloud-{guild_id}",
                                         on_crash=lambda _error: service.reader_crashed(self))

    def push(self, message_id: int, author_id: int, utterance: Utterance, *, order: int | None = None) -> None:
        dropped = self.queue.push(message_id, author_id, utterance, self.service.clock(), order, hold=utterance.hold)
        if dropped is not None:
            self.dropped += 1
            self._cancel_early(dropped.message_id, Waste.STOPPED)
            log.info("read-aloud queue full (guild=%s): dropped a message of user=%s", self.guild_id, dropped.author_id)
        self._start_early(message_id)
        self._wakeup.set()

    def edit(self, message_id: int, utterance: Utterance) -> None:
        if self.queue.update(message_id, utterance, self.service.clock(), hold=utterance.hold):
            # Being synthesized with the old text: again with the new one (the hold started again too).
            restart = self._cancel_early(message_id, Waste.EDITED, restarting=True)
            self._start_early(message_id, restart=restart)
            self._wakeup.set()

    def delete(self, message_ids: Iterable[int]) -> None:
        for message_id in message_ids:
            self.queue.remove(message_id)
            self._cancel_early(message_id, Waste.DELETED)
            playing = self._playing
            if playing is not None and playing[0] == message_id:
                session = self.service.sessions.get(self.guild_id)
                if session is not None:
                    session.player.skip_if(playing[1].id)

    def close(self) -> None:
        self._clear()
        self._task.cancel()
        for task in self._prefetches:
            task.cancel()

    def _clear(self) -> None:
        self.queue.clear()
        for message_id in list(self._early):
            self._cancel_early(message_id, Waste.STOPPED)

    def _start_early(self, message_id: int, *, restart: bool = False) -> None:
        """Synthesize a queued message during its hold when the server's hold mode says so and the message will
        be read as soon as its hold ends: nothing else waits before it and no read-aloud message is playing
        (``restart``: it was being synthesized before an edit). A ``/speak`` item in the player does not count: it
        changes neither the order nor the backlog of read-aloud. Anything else waits for its turn, where the
        prefetch while a message plays covers it; such a message could also still be dropped for room or sped up
        by a backlog."""
        entry = self.queue.get(message_id)
        if entry is None or message_id in self._early or not entry.payload.early:
            return
        now = self.service.clock()
        if entry.eligible_at <= now:  # no hold: the reader takes it at once anyway
            return
        if not restart and (len(self.queue) > 1 or self._playing is not None):
            return
        try:
            request = self._request(entry, waiting=len(self.queue), commit=False)
        except Exception:  # noqa: BLE001 - reported when the message itself is taken
            return
        if request is None:
            return
        self.queue.protect(message_id)
        service, user_id = self.service, entry.author_id
        self._early[message_id] = EarlySynthesis(
            request,
            lambda: service.admit(self.guild_id, user_id, request),
            service.open,  # type: ignore[arg-type]  # what admit returned
            spawn=lambda coroutine, name: service.tasks.spawn(coroutine, name=name),
            name=f"read-aloud-early-{self.guild_id}",
            stats=service.early,
        )

    def _cancel_early(self, message_id: int, why: Waste, *, restarting: bool = False) -> bool:
        """Stop the message's synthesis during the hold, if any; True if there was one."""
        early = self._early.pop(message_id, None)
        if early is None:
            return False
        if early.cancel(why):
            log.debug("read-aloud: an early synthesis was not used (guild=%s): %s%s", self.guild_id, why.value,
                      ", synthesizing again" if restarting else "")
        return True

    async def _run(self) -> None:
        done: asyncio.Event | None = None  # set when the item handed to the player has left it
        try:
            while True:
                ready = await self._wait_ready()
                if done is not None and not done.is_set():
                    self._prefetch(ready)  # synthesis overlaps the current playback
                    await done.wait()
                entry = self.queue.pop_ready(self.service.clock())
                if entry is None:  # deleted (or pushed back by an edit) while the previous item played
                    continue
                early = self._early.pop(entry.message_id, None)
                try:
                    request = self._request(entry, waiting=len(self.queue) + 1, commit=True)
                except Exception:  # one unreadable message must not stop reading in this guild
                    log.exception("read-aloud could not prepare a message (guild=%s)", self.guild_id)
                    request = None
                if early is not None and early.request != request:
                    # Something it was decided on changed (the name prefix, a backlog's speed): not this audio.
                    early.cancel(Waste.CHANGED)
                    early = None
                if request is None:
                    continue
                done = self._play(entry, request, early)
                if done is None and self.service.sessions.get(self.guild_id) is None:
                    break
        finally:
            self.service.reader_finished(self)

    async def _wait_ready(self) -> Entry[Utterance]:
        while True:
            now = self.service.clock()
            if (entry := self.queue.peek_ready(now)) is not None:
                return entry
            at = self.queue.next_eligible_at()
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if at is None else max(0.0, at - now)):
                    await self._wakeup.wait()

    def _play(self, entry: Entry[Utterance], request: SpeechRequest, early: EarlySynthesis | None = None
              ) -> asyncio.Event | None:
        session = self.service.sessions.get(self.guild_id)
        if session is None:
            if early is not None:
                early.cancel()
            self._clear()
            return None
        done = asyncio.Event()
        if early is None:
            item = PlayItem(request, entry.author_id, open_stream=lambda: self._open(entry.author_id, request))
        else:
            item = PlayItem(request, entry.author_id,
                            open_stream=lambda: self._open_early(early, entry.author_id, request))

        def finished() -> None:
            if self._playing is not None and self._playing[1] is item:
                self._playing = None
            if early is not None:  # left the player without asking for its audio (cleared, session over)
                early.cancel()
            done.set()

        item.on_done = finished
        try:
            session.enqueue(item)
        except QueueFullError:
            log.info("voice queue full (guild=%s): a read-aloud message was dropped", self.guild_id)
            if early is not None:
                early.cancel()
            return None
        self._playing = (entry.message_id, item)
        return done

    async def _open(self, user_id: int, request: SpeechRequest) -> SpeechStream:
        return await self.service.fetch(self.guild_id, user_id, request)

    async def _open_early(self, early: EarlySynthesis, user_id: int, request: SpeechRequest) -> SpeechStream:
        try:
            return await early.take()
        except SpeechError:  # refused or failed during the hold: asked again, and a second failure is reported
            return await self._open(user_id, request)

    def _prefetch(self, entry: Entry[Utterance]) -> None:
        if entry.message_id in self._early:  # already being synthesized since it arrived
            return
        try:
            request = self._request(entry, waiting=len(self.queue), commit=False)
        except Exception:  # noqa: BLE001 - reported when the message itself is taken
            return
        if request is None:
            return
        self.queue.protect(entry.message_id)
        task = self.service.tasks.spawn(self._quiet_fetch(entry.author_id, request),
                                        name=f"read-aloud-prefetch-{self.guild_id}")
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
        text = with_dictionary(text, u.dictionary)
        if not text:
            return None
        speed = u.speed
        if waiting >= BACKLOG_THRESHOLD:  # as fast as asked, within what the engine can do
            speed = max(speed, min(self.service.speeds.high, round(speed * u.backlog_speedup, 2)))
        try:
            return validate_request(
                SpeechRequest(text=text, voice=u.voice, format=READ_FORMAT, speed=speed, instructions=u.instructions,
                              playback=True, language=None if u.options.language == ENGLISH else u.options.language),
                self.service.voices,
                speeds=self.service.speeds,
            )
        except SpeechError:
            log.warning("read-aloud request refused before sending (guild=%s)", self.guild_id)
            return None
