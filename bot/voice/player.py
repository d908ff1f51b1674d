"""One guild's playback: a bounded queue, one consumer, and synthesis of the next item while this one plays."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import discord

from bot.audio.decode import AudioDecodeError
from bot.audio.packetizer import opus_packet_batches
from bot.errors import UserFacingError
from bot.i18n import N_, Text
from bot.speech.errors import SpeechError
from bot.speech.models import SpeechBackend, SpeechRequest, SpeechStream
from bot.voice.source import StreamedOpusSource

#: How long an item ready during a voice reconnect waits for the connection before it is given up.
RECONNECT_GRACE = 10.0
#: The longest the player waits for an item's "now playing" courtesy (a message edit) before going on.
ON_START_TIMEOUT = 5.0

log = logging.getLogger(__name__)

#: Called with a short user-safe message when an item could not be played (whole).
#: Tells the requester why their item failed; the message is worded in their language by the notifier.
ErrorNotifier = Callable[[Text], Awaitable[None]]
#: Opens the audio of an item; by default the speech backend, but callers that already hold the bytes
#: (``/speak output:both``) pass their own.
StreamOpener = Callable[[], Awaitable[SpeechStream]]

_ids = itertools.count(1)


class QueueFullError(UserFacingError):
    """The guild's queue holds ``VOICE_QUEUE_SIZE`` items already (or the session has just ended)."""


@dataclass(eq=False)
class PlayItem:
    """Something to say in the voice channel. ``on_error`` tells the requester if it fails; ``on_start`` is
    awaited when its audio really starts playing; ``on_done`` is called once when the item leaves the player
    (played, failed, skipped, cleared, or the session closed)."""

    request: SpeechRequest
    requester_id: int
    on_error: ErrorNotifier | None = None
    open_stream: StreamOpener | None = None
    on_done: Callable[[], None] | None = None
    on_start: Callable[[], Awaitable[None]] | None = None
    id: int = field(default_factory=lambda: next(_ids))
    queued_at: float = field(default_factory=time.monotonic)


class _Prepared:
    """An item whose synthesis has started: packets flow into ``source`` as they are decoded."""

    def __init__(
        self,
        item: PlayItem,
        speech: SpeechBackend,
        stall_timeout: float,
        on_first_packet: Callable[[float], None] | None = None,
    ) -> None:
        self.item = item
        self._on_first_packet = on_first_packet
        self.source = StreamedOpusSource(stall_timeout=stall_timeout)
        self._speech = speech
        self.ready = asyncio.Event()  # first packet decoded, or the item ended (failed or empty)
        self.skipped = False
        self.task = asyncio.create_task(self._produce(), name=f"voice-item-{item.id}")

    async def _produce(self) -> None:
        error: Text | None = None
        try:
            opener = self.item.open_stream or (lambda: self._speech.open(self.item.request))
            async for packets in opus_packet_batches(await opener()):
                if self.source.cancelled:
                    break
                self.source.push(packets)
                if not self.ready.is_set():
                    self.ready.set()
                    if self._on_first_packet is not None:
                        self._on_first_packet(time.monotonic() - self.item.queued_at)
        except SpeechError as exc:
            error = exc.text
        except AudioDecodeError:
            error = Text(N_("The speech service sent audio I could not decode."))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("voice item %s failed", self.item.id)
            error = Text(N_("Something went wrong while preparing the audio."))
        finally:
            self.source.end(error)
            self.ready.set()

    def cancel(self) -> None:
        """Skipped or dropped: stop producing and stop the source; no error is reported for it."""
        self.skipped = True
        self.stop()

    def stop(self) -> None:
        self.source.cleanup()
        self.task.cancel()


class GuildPlayer:
    """Plays :class:`PlayItem`s in order on one ``VoiceClient``; the next item is synthesized in advance.

    ``on_idle`` is called whenever the queue runs dry, so the owner can start its idle timer. ``on_crash`` is
    called if the player's loop itself fails (a bug, not a failed item): the player has then stopped accepting
    work and given every waiting item back, and the owner ends the session.
    """

    def __init__(
        self,
        voice_client: discord.VoiceClient,
        speech: SpeechBackend,
        *,
        max_queue: int,
        stall_timeout: float,
        on_idle: Callable[[], None] | None = None,
        on_first_packet: Callable[[float], None] | None = None,
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        self.voice_client = voice_client
        self._speech = speech
        self._max_queue = max_queue
        self._stall_timeout = stall_timeout
        self._on_idle = on_idle
        self._on_first_packet = on_first_packet  # seconds from queueing to the first packet (metrics)
        self._on_crash = on_crash
        self._queue: deque[PlayItem] = deque()
        self._prepared: dict[int, _Prepared] = {}
        self._wakeup = asyncio.Event()
        self._may_play = asyncio.Event()  # cleared while nobody would hear the bot (a stage's audience)
        self._may_play.set()
        self._current: _Prepared | None = None
        self._closed = False
        self._task = asyncio.create_task(self._run_guarded(), name=f"guild-player-{voice_client.guild.id}")

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def playing(self) -> bool:
        return self._current is not None

    def enqueue(self, item: PlayItem) -> int:
        """Queue ``item``; returns how many items are ahead of it (0 = plays next or now)."""
        if self._closed:
            raise QueueFullError("The voice session has ended.")
        if len(self._queue) >= self._max_queue:
            raise QueueFullError(f"The queue is full ({self._max_queue} items). Try again in a moment.")
        ahead = len(self._queue) + (1 if self._current else 0)
        self._queue.append(item)
        if self._current is not None and len(self._queue) == 1:
            self._prepare(item)  # the next item: synthesize it while the current one plays
        self._wakeup.set()
        return ahead

    @property
    def current_item(self) -> PlayItem | None:
        return self._current.item if self._current is not None else None

    def skip_if(self, item_id: int) -> bool:
        """Stop the current item only if it is ``item_id`` (a read message deleted while it plays)."""
        current = self.current_item
        return current is not None and current.id == item_id and self.skip()

    def skip(self) -> bool:
        """Stop the current item; the queue goes on. False if nothing was playing."""
        current = self._current
        if current is None:
            return False
        current.cancel()
        if self.voice_client.is_playing() or self.voice_client.is_paused():
            self.voice_client.stop()
        return True

    @property
    def held(self) -> bool:
        """Playback is held (:meth:`hold`): items wait in the queue."""
        return not self._may_play.is_set()

    def hold(self) -> bool:
        """Send no audio until :meth:`release`: nobody would hear it (the bot is in a stage's audience).

        The item playing is stopped (what is left of it would be lost on the way); the queue waits. True if
        something was cut off.
        """
        self._may_play.clear()
        return self.skip()

    def release(self) -> None:
        """Play again after :meth:`hold`, starting with the next item in the queue."""
        self._may_play.set()

    def clear(self) -> int:
        """Drop every waiting item (the current one keeps playing); returns how many were dropped."""
        dropped = len(self._queue)
        items = list(self._queue)
        self._queue.clear()
        for item in items:
            if prepared := self._prepared.pop(item.id, None):
                prepared.cancel()
            _done(item)
        return dropped

    async def close(self) -> None:
        """Stop everything (idempotent). Does not disconnect: the session manager owns the connection."""
        if self._closed:
            return
        self._closed = True
        self.clear()
        self.skip()
        self._task.cancel()
        await asyncio.wait([self._task])  # not ``await``: catching its CancelledError would swallow our caller's

    async def _wait_reconnected(self) -> None:
        """An item ready while discord.py is reconnecting (a voice server change, a DAVE reset) waits for the
        connection to come back, rather than failing, for up to :data:`RECONNECT_GRACE` seconds."""
        deadline = asyncio.get_running_loop().time() + RECONNECT_GRACE
        while not self.voice_client.is_connected() and not self._closed:
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.05)  # discord.py offers no public event for "connected again"

    def _prepare(self, item: PlayItem) -> _Prepared:
        prepared = self._prepared.get(item.id)
        if prepared is None:
            prepared = self._prepared[item.id] = _Prepared(
                item, self._speech, self._stall_timeout, self._on_first_packet
            )
        return prepared

    async def _run_guarded(self) -> None:
        """The loop; if it fails, nothing more is accepted and nothing waits forever for a player that is gone."""
        try:
            await self._run()
        except Exception:
            log.exception("the voice player failed (guild=%s); ending the voice session", self.voice_client.guild.id)
            self._closed = True
            self.clear()
            self.skip()
            if self._on_crash is not None:
                self._on_crash()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:  # a cancellation lost in a library's await still ends the loop after close()
            if not self._queue:
                if self._on_idle is not None:
                    self._on_idle()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self._may_play.is_set():
                await self._may_play.wait()
                continue
            item = self._queue.popleft()
            prepared = self._prepare(item)
            self._current = prepared
            playback_error: Text | None = None
            try:
                await prepared.ready.wait()
                if self._queue:
                    self._prepare(self._queue[0])
                if prepared.source.buffered or not prepared.source.error:
                    finished: asyncio.Future[Exception | None] = loop.create_future()

                    def after(error: Exception | None, finished: asyncio.Future[Exception | None] = finished) -> None:
                        # Runs on discord.py's audio thread: hand control back to the loop, nothing more.
                        loop.call_soon_threadsafe(_resolve, finished, error)

                    if not self.voice_client.is_connected():
                        await self._wait_reconnected()
                    if not self.voice_client.is_connected():
                        prepared.source.end(Text(N_("I was disconnected from the voice channel.")))
                    else:
                        log.debug("playing item %s (guild=%s)", item.id, self.voice_client.guild.id)
                        self.voice_client.play(prepared.source, after=after)
                        if item.on_start is not None:
                            await _started(item)
                        player_error = await finished
                        if isinstance(player_error, UserFacingError):  # e.g. encryption never became ready
                            playback_error = player_error.text
                        elif player_error is not None:
                            log.error("audio player failed (guild=%s): %r", self.voice_client.guild.id, player_error)
                # Playback is over (finished, stalled, skipped or disconnected): the download may still run.
                prepared.stop()
                await asyncio.wait([prepared.task])
                error = prepared.source.error or playback_error
                log.debug(
                    "item %s done (guild=%s packets=%d skipped=%s failed=%s)",
                    item.id, self.voice_client.guild.id, prepared.source.packets_read, prepared.skipped, bool(error),
                )
                if error and item.on_error is not None and not prepared.skipped:
                    await _notify(item, error)
            finally:
                self._prepared.pop(item.id, None)
                self._current = None
                _done(item)


def _done(item: PlayItem) -> None:
    if item.on_done is not None:
        try:
            item.on_done()
        except Exception:
            log.exception("on_done failed for item %s", item.id)


def _resolve(future: asyncio.Future[Exception | None], error: Exception | None) -> None:
    if not future.done():
        future.set_result(error)


async def _started(item: PlayItem) -> None:
    """Tell the requester their item is playing (a courtesy: it never holds up or stops the playback)."""
    assert item.on_start is not None
    try:
        async with asyncio.timeout(ON_START_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
            await item.on_start()
    except Exception as exc:  # noqa: BLE001 - the audio matters more than the status line
        log.info("could not say item %s is playing: %s", item.id, type(exc).__name__)


async def _notify(item: PlayItem, message: Text) -> None:
    assert item.on_error is not None
    try:
        await item.on_error(message)
    except Exception:
        log.exception("could not report a playback error for item %s", item.id)
