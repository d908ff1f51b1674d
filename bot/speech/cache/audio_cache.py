"""The cache itself: a :class:`~bot.speech.models.SpeechBackend` that answers from memory, then disk, then
a shared download (see :mod:`bot.speech.cache` for the whole design).

It decides what is kept and for how long (the memory tier and the disk index, both least recently used first
out, bounded in bytes) and wires the parts together: :mod:`.disk` does the file work in worker threads and
:mod:`.inflight` shares what is being fetched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from bot.audio.decode import AudioDecodeError
from bot.audio.validate import check_audio
from bot.i18n import N_
from bot.speech.cache.disk import ENTRY_OVERHEAD, DiskStore
from bot.speech.cache.inflight import Flight, FlightStream, SynthesisAbandoned
from bot.speech.cache.keys import MIB, CacheSource, CacheStats, Origin, cache_key, size_text
from bot.speech.errors import SpeechServiceError
from bot.speech.models import BufferedSpeechStream, SpeechBackend, SpeechRequest, SpeechStream, SynthesizedAudio

log = logging.getLogger(__name__)

#: Chunks a disk hit is replayed in (the size the HTTP client typically yields).
_REPLAY_CHUNK = 16 * 1024


class AudioCache:
    """A caching :class:`~bot.speech.models.SpeechBackend` over ``inner`` (see the module's documentation).

    ``memory_bytes`` (0 = no memory tier) and ``disk_bytes`` bound the audio kept; ``disk_dir`` None (or
    ``disk_bytes`` 0) turns the disk tier off. ``on_lookup`` is called with the :class:`Origin` of every
    successful lookup and ``Origin.SENT`` for every miss (metrics). Call :meth:`start` once (it scans the
    disk; writes wait for it) and :meth:`shutdown` at the end (it waits for pending writes and logs the hit
    rate); :meth:`close` also closes ``inner``.
    """

    def __init__(
        self,
        inner: SpeechBackend,
        *,
        namespace: str,
        memory_bytes: int = 32 * MIB,
        disk_dir: Path | None = None,
        disk_bytes: int = 0,
        on_lookup: Callable[[Origin], None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.namespace = namespace
        self.memory_limit = memory_bytes
        self.disk_limit = disk_bytes if disk_dir is not None else 0
        self.disk = DiskStore(disk_dir) if disk_dir is not None and disk_bytes > 0 else None
        self._on_lookup = on_lookup
        self._memory: OrderedDict[str, SynthesizedAudio] = OrderedDict()
        self._memory_bytes = 0
        self._index: OrderedDict[str, int] = OrderedDict()  # disk entries, least recently used first
        self._disk_bytes = 0
        self._in_flight: dict[str, Flight] = {}
        self._producers: set[asyncio.Task[None]] = set()
        self._writes: set[asyncio.Task[None]] = set()
        self._scan: asyncio.Task[None] | None = None
        self._counts = dict.fromkeys(Origin, 0)
        self._write_failed = False
        self._stopped = False

    # -- the SpeechBackend protocol --

    async def open(self, request: SpeechRequest) -> SpeechStream:
        return (await self.open_tracked(request))[0]

    async def close(self) -> None:
        await self.shutdown()
        await self.inner.close()

    # -- more --

    @property
    def stats(self) -> CacheStats:
        counts = self._counts
        return CacheStats(
            memory_hits=counts[Origin.MEMORY],
            disk_hits=counts[Origin.DISK],
            shared_hits=counts[Origin.SHARED],
            misses=counts[Origin.SENT],
            memory_entries=len(self._memory),
            memory_bytes=self._memory_bytes,
            disk_entries=len(self._index),
            disk_bytes=self._disk_bytes,
        )

    def key(self, request: SpeechRequest, namespace: str | None = None) -> str:
        return cache_key(self.namespace if namespace is None else namespace, request)

    def has(self, request: SpeechRequest, *, namespace: str | None = None) -> bool:
        """True when ``request`` would be served without sending anything new (cached or in flight)."""
        digest = self.key(request, namespace)
        return digest in self._memory or digest in self._in_flight or digest in self._index

    async def open_tracked(
        self, request: SpeechRequest, *, persist: bool = True, source: CacheSource | None = None
    ) -> tuple[SpeechStream, Origin]:
        """Open ``request``'s audio and say where it comes from (``Origin.SENT``: this call sent the request,
        so it counts as usage). Failures are raised as the wrapped backend raises them and are not cached.

        ``persist`` False keeps audio this call fetches out of the disk tier (memory only), unless another
        caller sharing the same download wants it kept; it is still served from disk when already there.
        ``source`` names another backend and namespace than the cache's own (the engines of a failover).
        """
        backend = self.inner if source is None else source.backend
        digest = self.key(request, None if source is None else source.namespace)
        if (audio := self._memory.get(digest)) is not None:
            self._memory.move_to_end(digest)
            self._count(Origin.MEMORY)
            return BufferedSpeechStream(audio), Origin.MEMORY
        flight = self._in_flight.get(digest)
        joined = flight is not None
        if flight is None:
            flight = self._in_flight[digest] = Flight(digest)
            flight.task = asyncio.create_task(self._produce(flight, request, backend), name="audio-cache-fill")
            self._producers.add(flight.task)
            flight.task.add_done_callback(self._producers.discard)
        flight.readers += 1
        flight.persist = flight.persist or persist
        stream = FlightStream(self._release, flight)
        try:
            await asyncio.shield(flight.opened)
        except BaseException:
            stream.detach()
            raise
        if joined:
            self._count(Origin.SHARED)
            return stream, Origin.SHARED
        assert flight.origin is not None
        return stream, flight.origin

    async def start(self) -> None:
        """Scan the disk tier (in a worker thread): rebuild the least-recently-used order from file times."""
        if self._scan is None:
            self._scan = asyncio.create_task(self._load_index(), name="audio-cache-scan")
        await asyncio.shield(self._scan)

    async def flush(self) -> None:
        """Wait until the audio already downloaded is on disk."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop the downloads still under way (their readers get an error), finish writing to disk and log the
        hit rate once. Idempotent."""
        for flight in list(self._in_flight.values()):
            if not flight.done and flight.task is not None:
                flight.task.cancel()
        while self._producers:
            await asyncio.gather(*self._producers, return_exceptions=True)
        await self.flush()
        if self._scan is not None and not self._scan.done():
            self._scan.cancel()
            await asyncio.gather(self._scan, return_exceptions=True)
        if not self._stopped:
            self._stopped = True
            log.info("%s", self.stats.summary())

    # -- internals --

    def _count(self, origin: Origin) -> None:
        self._counts[origin] += 1
        if self._on_lookup is not None:
            self._on_lookup(origin)

    async def _produce(self, flight: Flight, request: SpeechRequest, backend: SpeechBackend) -> None:
        """Fill ``flight`` from the disk or ``backend``; cache it when it completed."""
        digest = flight.digest
        try:
            found = await self._read_disk(digest)
            if found is not None:
                flight.begin(found.format, Origin.DISK)
                self._count(Origin.DISK)
                for start in range(0, len(found.data), _REPLAY_CHUNK):
                    flight.push(found.data[start : start + _REPLAY_CHUNK])
                audio = found
            else:
                self._count(Origin.SENT)
                stream = await backend.open(request)
                try:
                    flight.begin(stream.format, Origin.SENT)
                    async for chunk in stream:
                        flight.push(chunk)
                finally:
                    await stream.aclose()
                assert flight.format is not None
                audio = SynthesizedAudio(b"".join(flight.chunks), flight.format)
                await _check_intact(audio, backend.name)
        except asyncio.CancelledError:
            self._forget(flight)
            flight.finish(SynthesisAbandoned("The speech request was stopped."))
            raise
        except BaseException as error:  # noqa: BLE001 - every waiter on the flight gets it instead
            self._forget(flight)
            flight.finish(error)
            return
        flight.finish()
        if not audio.data:
            self._forget(flight)
            return
        self._remember(digest, audio)
        if self.disk is not None and flight.origin is Origin.SENT and flight.persist:
            # Until it is on disk, the finished flight answers identical requests (when memory could not keep it).
            task = asyncio.create_task(self._write(flight, audio), name="audio-cache-write")
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        else:
            self._forget(flight)

    def _forget(self, flight: Flight) -> None:
        if self._in_flight.get(flight.digest) is flight:
            del self._in_flight[flight.digest]

    def _release(self, flight: Flight) -> None:
        """A reader is done with ``flight``; when nobody reads an unfinished one any more, stop it."""
        flight.readers -= 1
        if flight.readers <= 0 and not flight.done:
            self._forget(flight)
            if flight.task is not None:
                flight.task.cancel()

    def _remember(self, digest: str, audio: SynthesizedAudio) -> None:
        size = len(audio.data)
        if size > self.memory_limit:
            return
        if (old := self._memory.pop(digest, None)) is not None:
            self._memory_bytes -= len(old.data)
        self._memory[digest] = audio
        self._memory_bytes += size
        while self._memory_bytes > self.memory_limit:
            _, evicted = self._memory.popitem(last=False)
            self._memory_bytes -= len(evicted.data)

    async def _read_disk(self, digest: str) -> SynthesizedAudio | None:
        """The disk entry, if any. Looked up even when the index lacks it: another process sharing the
        directory may have written it."""
        if self.disk is None:
            return None
        try:
            found = await asyncio.to_thread(self.disk.read, digest)
        except OSError as exc:
            log.warning("audio cache: could not read from the cache directory (%s)", exc.strerror or type(exc).__name__)
            found = None
        if found is None:
            self._drop_index(digest)
            return None
        audio, size = found
        if evicted := self._add_index(digest, size):
            await asyncio.to_thread(self.disk.remove, evicted)
        return audio

    async def _write(self, flight: Flight, audio: SynthesizedAudio) -> None:
        try:
            await self.start()
            disk = self.disk
            if disk is None or len(audio.data) + ENTRY_OVERHEAD > self.disk_limit:
                return  # the scan found the directory unusable, or the entry is too big to keep
            try:
                size = await asyncio.to_thread(disk.write, flight.digest, audio)
            except OSError as exc:
                # Once is enough at WARNING (a full or read-only disk fails every write).
                level = logging.DEBUG if self._write_failed else logging.WARNING
                log.log(level, "audio cache: could not write to %s (%s)", disk.directory,
                        exc.strerror or type(exc).__name__)
                self._write_failed = True
                return
        finally:
            self._forget(flight)
        if evicted := self._add_index(flight.digest, size):
            await asyncio.to_thread(disk.remove, evicted)

    def _add_index(self, digest: str, size: int) -> list[str]:
        """Record a disk entry as the most recently used; returns the keys evicted to stay in bounds (their
        files are still to be removed)."""
        self._drop_index(digest)
        self._index[digest] = size
        self._disk_bytes += size
        evicted: list[str] = []
        while self._disk_bytes > self.disk_limit and self._index:
            old, old_size = self._index.popitem(last=False)
            self._disk_bytes -= old_size
            evicted.append(old)
        return evicted

    def _drop_index(self, digest: str) -> None:
        if (size := self._index.pop(digest, None)) is not None:
            self._disk_bytes -= size

    async def _load_index(self) -> None:
        if self.disk is None:
            return
        try:
            entries = await asyncio.to_thread(self.disk.scan)
        except OSError as exc:
            log.warning(
                "audio cache: the cache directory %s is not usable (%s); caching in memory only",
                self.disk.directory,
                exc.strerror or type(exc).__name__,
            )
            self.disk = None
            return
        known = self._index
        self._index, self._disk_bytes = OrderedDict(), 0
        evicted: list[str] = []
        for digest, size, _ in entries:
            if digest not in known:
                evicted += self._add_index(digest, size)
        for digest, size in known.items():  # touched while the scan ran: the most recent
            evicted += self._add_index(digest, size)
        if evicted:
            await asyncio.to_thread(self.disk.remove, evicted)
        log.info(
            "audio cache: %d entries (%s) on disk; bounds %s on disk, %s in memory",
            len(self._index),
            size_text(self._disk_bytes),
            size_text(self.disk_limit),
            size_text(self.memory_limit),
        )


async def _check_intact(audio: SynthesizedAudio, engine: str) -> None:
    """Damaged audio (a bad checksum, a body cut short, garbage after a valid start) is never cached, uploaded
    or replayed: the readers get a SpeechServiceError instead. Checking runs off the event loop."""
    try:
        await asyncio.to_thread(check_audio, audio.data, audio.format)
    except AudioDecodeError as exc:
        log.warning("the speech service (%s) sent damaged %s audio, not used: %s", engine, audio.format.value, exc)
        raise SpeechServiceError(N_("The speech service sent damaged audio. Try again."), detail=str(exc)) from None
