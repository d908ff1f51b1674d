"""The bridge between the event loop (which produces Opus packets) and the thread that sends them.

The sender (``bot.voice.sender``, or discord.py's ``AudioPlayer``) takes a packet every 20 ms on its own
thread and must never wait on the network: when the next packet is not there yet (a slow stream) it gets an
Opus silence frame so the RTP clock keeps running, and the source gives up after ``stall_timeout`` seconds
without audio.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from bot.audio.opus import SILENCE_FRAME
from bot.i18n import N_, Text
from bot.voice.sender import NonBlockingSource

#: How long ``read`` may wait for a packet that is about to arrive before sending silence instead
#: (a fraction of the 20 ms frame, so the player stays on time).
_READ_WAIT = 0.005


class StreamedOpusSource(NonBlockingSource):
    """20 ms Opus packets pushed from the loop (thread-safe), read by the player thread.

    The producer calls :meth:`push` with each batch of packets and :meth:`end` once (with a user-safe message
    if the stream failed). :attr:`error` holds that message after playback.
    """

    def __init__(self, *, stall_timeout: float = 30.0) -> None:
        self._packets: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._ended = False
        self._cancelled = False
        self._stall_timeout = stall_timeout
        self._starved_since: float | None = None
        self.error: Text | None = None
        self.packets_read = 0

    # producer side (event loop) -------------------------------------------------------------------------

    def push(self, packets: list[bytes]) -> None:
        """Queue packets in order (a batch: one lock and one wake-up for all of them)."""
        with self._ready:
            self._packets.extend(packets)
            self._ready.notify()

    def end(self, error: Text | None = None) -> None:
        """No more packets; ``error`` is shown to the requester when the item could not be played whole."""
        with self._ready:
            if not self._ended:
                self._ended = True
                self.error = error
            self._ready.notify()

    @property
    def buffered(self) -> int:
        return len(self._packets)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    # player side (audio thread) -------------------------------------------------------------------------

    def read(self) -> bytes:
        """For discord.py's own player: waits a moment for a packet that is about to arrive."""
        with self._ready:
            if not self._packets and not self._ended and not self._cancelled:
                self._ready.wait(_READ_WAIT)
            return self._take()

    def read_nowait(self) -> bytes:
        """For the shared sender, which must not hold up the other guilds' packets.

        The common case, a packet is there, takes no lock: ``deque.popleft`` is atomic, and the sender is the
        only reader. A packet taken just as ``cleanup`` runs is one 20 ms frame, as if read a moment earlier.
        """
        try:
            packet = self._packets.popleft()
        except IndexError:
            with self._ready:
                return self._take()
        return b"" if self._cancelled else self._delivered(packet)

    def _take(self) -> bytes:
        if self._cancelled:
            return b""
        if self._packets:
            return self._delivered(self._packets.popleft())
        if self._ended:
            return b""
        now = time.monotonic()
        if self._starved_since is None:
            self._starved_since = now
        elif now - self._starved_since > self._stall_timeout:
            self._ended = True
            self.error = self.error or Text(N_("The speech stream stalled, so I skipped it."))
            return b""
        return SILENCE_FRAME

    def _delivered(self, packet: bytes) -> bytes:
        self._starved_since = None
        self.packets_read += 1
        return packet

    def cleanup(self) -> None:
        """Called by discord.py when playback stops for any reason (end, skip, disconnect)."""
        with self._ready:
            self._cancelled = True
            self._packets.clear()
            self._ready.notify_all()
