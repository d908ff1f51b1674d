"""One thread sends every guild's voice packets, each stream on its own 20 ms clock.

discord.py's ``VoiceClient.play`` starts one ``AudioPlayer`` thread per guild that wakes every 20 ms to send
one packet. With many guilds those threads cost more CPU than the audio does (GIL hand-offs and wake-ups;
``bench/bench_voice.py`` measures it). :class:`PacketSender` is one thread for all of them, on one 20 ms
clock: a stream's first packet goes out at once, and from its second packet on it follows the shared ticks
(the second comes 10–30 ms after the first, never closer, well inside any receiver's jitter buffer). So the
thread wakes once per 20 ms however many guilds play: one wake-up, one GIL hand-over, every due packet sent,
which keeps both the CPU per packet and the lateness low when the event loop is busy.

While the call's end-to-end encryption (DAVE) is not ready, a stream holds its next packet instead of sending it
in the clear (discord.py's player would, and every listener would drop it): after a join the first words wait
the few round trips the group takes, and nothing is lost. A stream that waits longer than
``E2EE_READY_TIMEOUT`` ends with :class:`E2EETimeoutError`, whose message tells whoever asked.

It keeps ``AudioPlayer``'s contract, so a ``VoiceClient`` cannot tell the difference: SPEAKING is sent before
the first packet (strictly: the first packet waits until the websocket has sent it) and cleared on stop, five
silence frames follow the last packet, playback waits (up to the client's timeout) through a voice reconnect,
``after`` is called on the sender thread with the error if any, then ``source.cleanup()``. Packets go out as
``VoiceClient.send_audio_packet`` sends them, byte for byte (:class:`~bot.voice.rtp.RtpWriter`), and DAVE
encryption stays discord.py's. Only sources whose ``read_nowait`` never blocks can share the thread; anything
else gets discord.py's own player.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import discord
from discord import SpeakingState

from bot.audio.opus import SILENCE_FRAME
from bot.discord_internals import voice_connection
from bot.errors import UserFacingError
from bot.voice.connection import E2EE_READY_TIMEOUT
from bot.voice.rtp import E2EENotReady, RtpWriter

log = logging.getLogger(__name__)

FRAME = 0.02
#: Packets due this soon are sent in the same wake-up (first packets of new streams, mostly).
_COALESCE = 0.002
#: The least time between a stream's first packet and its second (the first tick after this).
_MIN_SPACING = 0.01
#: A stream this far behind its clock (the process was stalled) restarts its clock instead of bursting.
_MAX_BEHIND = 0.2
_END_SILENCE_FRAMES = 5

After = Callable[[Exception | None], Any]


class E2EETimeoutError(UserFacingError):
    """An item waited too long for the call's end-to-end encryption: nobody could have heard it."""

    def __init__(self) -> None:
        super().__init__("I couldn't set up end-to-end encryption in the voice channel in time, so nobody would "
                         "have heard that. Try again in a moment.")


class NonBlockingSource(discord.AudioSource):
    """An Opus source whose ``read_nowait`` returns at once: the next packet, silence, or b"" at the end."""

    def is_opus(self) -> bool:
        return True

    def read_nowait(self) -> bytes:
        raise NotImplementedError


class SharedPlayback:
    """One stream on the shared sender; stands in for discord.py's ``AudioPlayer`` in ``VoiceClient._player``.

    The control methods are called on the event loop; everything else runs on the sender thread.
    """

    def __init__(
        self, sender: PacketSender, client: discord.VoiceClient, source: NonBlockingSource, after: After | None
    ) -> None:
        self._sender = sender
        self.client = client
        self.source = source
        self.after = after
        self._writer = RtpWriter(client)
        self.due = time.perf_counter()
        self._ended = False
        self._paused = False
        self._silenced = False  # the pause's silence frames are out
        self._reconnecting_since: float | None = None
        self._held: bytes | None = None  # a packet waiting for end-to-end encryption to be ready
        self._holding_since: float | None = None
        self._error: Exception | None = None
        self.generation = 0  # bumped by PacketSender.wake; heap entries of older generations are stale
        self.finished = False  # after() has been called

    # -- control (event loop), the AudioPlayer interface VoiceClient uses -----------------------------------

    def is_playing(self) -> bool:
        return not self._ended and not self._paused

    def is_paused(self) -> bool:
        return not self._ended and self._paused

    def stop(self) -> None:
        self._ended = True
        self._speak(SpeakingState.none)
        self._sender.wake(self)

    def pause(self, *, update_speaking: bool = True) -> None:
        self._paused = True
        if update_speaking:
            self._speak(SpeakingState.none)

    def resume(self, *, update_speaking: bool = True) -> None:
        self._paused = False
        self._silenced = False
        if update_speaking:
            self._speak(SpeakingState.voice)
        self._sender.wake(self)

    def set_source(self, source: discord.AudioSource) -> None:
        if not isinstance(source, NonBlockingSource):
            raise TypeError("the shared sender plays NonBlockingSource only")
        self.source = source

    # -- sending (sender thread) ----------------------------------------------------------------------------

    def step(self, now: float) -> bool:
        """Send what is due; returns False when the stream is over (``after`` has been called)."""
        try:
            if self._ended:
                return self._finish()
            if self._paused:
                if not self._silenced:
                    self._silenced = True
                    self._send_silence()
                return True  # parked by the sender until resume()
            if not self.client.is_connected():
                return self._wait_for_reconnect(now)
            if self._reconnecting_since is not None:  # back after a voice reconnect
                self._reconnecting_since = None
                self._holding_since = None  # a new connection: its encryption gets the whole bound again
                self._speak(SpeakingState.voice)
                self.due = now
            data = self._held or self.source.read_nowait()
            if not data:
                return self._end()
            try:
                self._writer.send(data)
            except E2EENotReady:
                return self._hold(data, now)
            self._held = self._holding_since = None
            # The next tick of the shared clock (a stream already on it: exactly one frame later). A stream far
            # behind (the process was stalled) rejoins the clock now instead of sending a burst.
            self.due = self._sender.tick_after(max(self.due, now - _MAX_BEHIND) + _MIN_SPACING)
            return True
        except Exception as exc:  # noqa: BLE001 - ends this stream, reported to its owner
            self._error = exc
            return self._end()

    def _hold(self, packet: bytes, now: float) -> bool:
        """Keep ``packet`` until the call's end-to-end encryption is ready; give up after the bound."""
        self._held = packet
        if self._holding_since is None:
            self._holding_since = now
        elif now - self._holding_since > E2EE_READY_TIMEOUT:
            log.warning("voice item given up: end-to-end encryption not ready after %.0f s (guild=%s)",
                        E2EE_READY_TIMEOUT, self.client.guild.id)
            self._error = E2EETimeoutError()
            self._call_on_loop(getattr(voice_connection(self.client), "e2ee_timed_out", None))
            return self._end()
        self.due = now + FRAME
        return True

    def _call_on_loop(self, callback: Callable[[], Any] | None) -> None:
        if callback is not None:
            try:
                self.client.client.loop.call_soon_threadsafe(callback)
            except RuntimeError:  # the loop is closed: shutting down
                pass

    def _end(self) -> bool:
        """The source ran dry or sending failed: what ``stop`` does, from the sender thread itself."""
        self._ended = True
        self._speak(SpeakingState.none)
        return self._finish()

    def end_unplayed(self) -> None:
        self._ended = True
        self._finish(silence=False)

    @property
    def parked(self) -> bool:
        return self._paused and self._silenced and not self._ended

    def _wait_for_reconnect(self, now: float) -> bool:
        if self._reconnecting_since is None:
            self._reconnecting_since = now
        elif now - self._reconnecting_since > self.client.timeout:
            log.debug("voice did not reconnect in time (guild=%s): playback aborted", self.client.guild.id)
            self._ended = True
            return self._finish(silence=False)
        self.due = now + FRAME
        return True

    def _finish(self, *, silence: bool = True) -> bool:
        if silence and self.client.is_connected():
            self._send_silence()
        try:
            if self.after is not None:
                self.after(self._error)
            elif self._error is not None:
                log.error("voice playback failed (guild=%s)", self.client.guild.id, exc_info=self._error)
        except Exception:
            log.exception("the after callback of a voice playback failed")
        finally:
            self.source.cleanup()
        return False

    def _send_silence(self) -> None:
        try:
            for _ in range(_END_SILENCE_FRAMES):
                self._writer.send(SILENCE_FRAME)
        except Exception:  # noqa: BLE001 - like discord.py: a failed silence frame is not worth reporting
            pass

    def _speak(self, state: SpeakingState) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.client.ws.speak(state), self.client.client.loop)
        except Exception:
            log.exception("could not send the speaking state")


class PacketSender:
    """The thread behind every :class:`SharedPlayback` of one bot; started on first use.

    Each playback has at most one live heap entry: ``wake`` re-queues it under a new generation, which
    makes any older entry stale.
    """

    def __init__(self) -> None:
        self._epoch = time.perf_counter()  # tick k of the shared clock is at epoch + k * FRAME
        self._lock = threading.Lock()  # guards the queue, the parked set and _closed
        # Rung (released) by whoever gives the thread work; the thread waits by acquiring it. A bare lock, not a
        # Condition: on a VM every wake-up costs tens of microseconds, and a Condition's wait adds a waiter lock
        # and two more acquisitions (65-75 µs per 20 ms wake against 95-120 µs, measured).
        self._bell = threading.Lock()
        self._bell.acquire()
        self._due: list[tuple[float, int, int, SharedPlayback]] = []  # (due, order, generation, playback)
        self._parked: set[SharedPlayback] = set()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def play(self, client: discord.VoiceClient, source: NonBlockingSource, after: After | None) -> SharedPlayback:
        """Start ``source`` (call on the event loop): SPEAKING goes out first, then the packets."""
        if self._closed:
            raise discord.ClientException("The voice sender has shut down.")
        playback = SharedPlayback(self, client, source, after)
        speaking = asyncio.get_running_loop().create_task(client.ws.speak(SpeakingState.voice))
        speaking.add_done_callback(lambda task: self._admit(playback, task))
        return playback

    def _admit(self, playback: SharedPlayback, speaking: asyncio.Task[None]) -> None:
        if not speaking.cancelled() and (error := speaking.exception()) is not None:
            # e.g. the voice websocket is being resumed: the packets still go out, listeners still hear them
            log.warning("could not send the speaking state (guild=%s): %s", playback.client.guild.id,
                        type(error).__name__)
        with self._lock:
            if not self._closed:
                playback.due = time.perf_counter()
                self._push(playback)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="voice-sender", daemon=True)
                    self._thread.start()
                self._ring()
                return
            playback.finished = True
        playback.end_unplayed()  # shut down meanwhile: ``after`` must still run

    def wake(self, playback: SharedPlayback) -> None:
        """``playback`` was stopped or resumed: handle it now rather than at its next packet."""
        with self._lock:
            if playback.finished:
                return
            self._parked.discard(playback)
            playback.generation += 1
            playback.due = time.perf_counter()
            self._push(playback)
            self._ring()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread once every stream has ended (their ``after`` callbacks run first)."""
        with self._lock:
            self._closed = True
            self._ring()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def tick_after(self, moment: float) -> float:
        """The first tick of the shared 20 ms clock at or after ``moment`` (the same float for every stream)."""
        return self._epoch + math.ceil((moment - self._epoch) / FRAME) * FRAME

    def _push(self, playback: SharedPlayback) -> None:
        heapq.heappush(self._due, (playback.due, next(self._order), playback.generation, playback))

    def _ring(self) -> None:
        try:
            self._bell.release()
        except RuntimeError:  # already rung: the thread has not taken the last ring yet
            pass

    def _next_batch(self) -> tuple[float, list[tuple[int, SharedPlayback]]] | None:
        """Wait until something is due; None when closed and nothing is left."""
        while True:
            with self._lock:
                while self._due and (self._due[0][3].finished or self._due[0][2] != self._due[0][3].generation):
                    heapq.heappop(self._due)  # stale: finished, or re-queued by ``wake``
                if not self._due:
                    if self._closed and not self._parked:
                        return None
                    wait = -1.0  # until rung
                else:
                    now = time.perf_counter()
                    wait = self._due[0][0] - now
                    if wait <= _COALESCE:
                        return now, self._pop_due(now + _COALESCE)
            self._bell.acquire(timeout=wait)  # rung (new work) or timed out (work due): look again

    def _pop_due(self, until: float) -> list[tuple[int, SharedPlayback]]:
        """The live entries due by ``until``, taken off the queue (call with the lock held)."""
        batch = []
        while self._due and self._due[0][0] <= until:
            _, _, generation, playback = heapq.heappop(self._due)
            if not playback.finished and generation == playback.generation:
                batch.append((generation, playback))
        return batch

    def _run(self) -> None:
        while (due := self._next_batch()) is not None:
            now, batch = due
            kept = [playback.step(now) for _, playback in batch]  # sending happens outside the lock
            with self._lock:
                for (generation, playback), keep in zip(batch, kept, strict=True):
                    if not keep:
                        playback.finished = True
                    elif playback.generation != generation:
                        pass  # ``wake`` re-queued it while it was sending
                    elif playback.parked:
                        self._parked.add(playback)
                    else:
                        self._push(playback)
