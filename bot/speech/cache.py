"""The audio cache: one for the whole bot, a :class:`~bot.speech.models.SpeechBackend` around the real one.

An entry is keyed by a SHA-256 of everything that changes the audio: where it comes from (backend, endpoint
and model), voice, speed, format, instructions and text. Neither the text nor the key is kept or logged: the
memory and the disk are indexed by the hash, and files are named after it.

* **Memory**: least recently used first out, bounded in bytes of audio.
* **Disk** (optional, and only for callers that want it: read-aloud keeps chat audio in memory): one file per
  entry under the cache directory, bounded in bytes, least recently used first out. The order survives
  restarts: a hit touches the file's mtime, and the start-up scan sorts by it. Files are written to a
  temporary name and renamed (atomic), off the event loop; each carries a header with the key's hash, the
  sniffed format, the length and a SHA-256 of the audio, so a corrupt, truncated or misplaced file is
  recognised when read, removed, and treated as a miss.
* **In flight**: a miss opens the real stream in a background task that tees every chunk into memory while the
  caller (and anyone asking for the same audio meanwhile) reads them as they arrive: voice playback starts with
  the first bytes, a second identical request replays the bytes so far and then follows. A stream that fails or
  is cut is never cached, and everyone reading it gets the error. When everyone reading a stream has closed it
  before the end (a skipped item), the download is stopped and nothing is cached.

A hit never reaches the wrapped backend, so it is not a speech request in the metrics, is served even while
the circuit breaker fails requests fast, and (see :class:`Origin`) tells its caller that nothing was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.audio.formats import AudioFormat
from bot.speech.errors import SpeechError
from bot.speech.models import BufferedSpeechStream, SpeechBackend, SpeechRequest, SpeechStream, SynthesizedAudio

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Chunks a disk hit is replayed in (the size the HTTP client typically yields).
_REPLAY_CHUNK = 16 * 1024
#: Temporary files older than this at start-up were left by a crash (a younger one may belong to another
#: process sharing the directory, still writing).
_STALE_TEMP_SECONDS = 600.0
#: Bumped whenever the key's recipe changes, so old files are simply never found again (and age out).
_KEY_VERSION = 1


class Origin(StrEnum):
    """Where the audio of one ``open`` came from; only ``SENT`` means this call sent a request."""

    MEMORY = "memory"
    DISK = "disk"
    SHARED = "shared"  # joined an identical request already on its way (or just finished)
    SENT = "sent"

    @property
    def sent(self) -> bool:
        return self is Origin.SENT


@dataclass(frozen=True, slots=True)
class CacheSource:
    """Who makes the audio on a miss, and the namespace its entries are kept under (one per engine, so a key
    always says which engine made the audio)."""

    backend: SpeechBackend
    namespace: str


@dataclass(frozen=True, slots=True)
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    shared_hits: int = 0
    misses: int = 0
    memory_entries: int = 0
    memory_bytes: int = 0
    disk_entries: int = 0
    disk_bytes: int = 0

    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits + self.shared_hits

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    def summary(self) -> str:
        """One log line: counts and sizes only."""
        rate = "n/a" if self.hit_rate is None else f"{self.hit_rate:.0%}"
        return (
            f"audio cache: {self.hits} hits (memory {self.memory_hits}, disk {self.disk_hits}, shared "
            f"{self.shared_hits}), {self.misses} misses, hit rate {rate}; memory {_size(self.memory_bytes)} in "
            f"{self.memory_entries} entries, disk {_size(self.disk_bytes)} in {self.disk_entries} entries"
        )


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1024:.1f} KiB"


def cache_key(namespace: str, request: SpeechRequest) -> str:
    """The hex SHA-256 naming ``request``'s audio. ``namespace`` says who makes it (backend, endpoint, model)."""
    fields = [
        _KEY_VERSION,
        namespace,
        request.voice,
        AudioFormat(request.format).value,
        float(request.speed),
        request.instructions or "",
        request.text,
    ]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


# --- disk -------------------------------------------------------------------------------------------------

_MAGIC = b"SBAUDIO1"
#: magic, the key's SHA-256, the format's name (NUL-padded), the audio's length and its SHA-256.
_HEADER = struct.Struct(">8s32s8sQ32s")
_SUFFIX = ".audio"
_TEMP_SUFFIX = ".tmp"


class DiskStore:
    """Blocking file operations on the cache directory; :class:`AudioCache` runs them in worker threads.

    Layout: ``<dir>/<first two hex digits>/<hex key>.audio``. Nothing here knows about bounds or order.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}{_SUFFIX}"

    def scan(self) -> list[tuple[str, int, int]]:
        """Every entry as (key, bytes, mtime in ns), oldest first; removes stale temporary and foreign files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entries: list[tuple[str, int, int]] = []
        now = time.time()
        for sub in os.scandir(self.directory):
            if not (sub.is_dir(follow_symlinks=False) and _is_hex(sub.name, 2)):
                continue
            for item in os.scandir(sub.path):
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                name = item.name
                digest = name.removesuffix(_SUFFIX)
                if name.endswith(_SUFFIX) and _is_hex(digest, 64) and digest[:2] == sub.name and item.is_file():
                    if stat.st_size > _HEADER.size:
                        entries.append((digest, stat.st_size, stat.st_mtime_ns))
                        continue
                elif name.endswith(_TEMP_SUFFIX) and now - stat.st_mtime < _STALE_TEMP_SECONDS:
                    continue  # another process may be writing it right now
                with contextlib.suppress(OSError):
                    os.unlink(item.path)  # a partial write, an empty file, or something that is not ours
        entries.sort(key=lambda entry: (entry[2], entry[0]))
        return entries

    def read(self, digest: str) -> tuple[SynthesizedAudio, int] | None:
        """The entry and its file size, or None when absent. A damaged file is removed (and None returned).
        A hit touches the file, so the least recently used order survives a restart."""
        path = self.path(digest)
        try:
            blob = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        audio = _decode(blob, digest)
        if audio is None:
            log.warning("audio cache: removed a damaged cache file")
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            _touch(path)
        return audio, len(blob)

    def write(self, digest: str, audio: SynthesizedAudio) -> int:
        """Write atomically (temporary file, then rename); returns the file's size. Raises OSError."""
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = _encode(digest, audio)
        temp = path.with_name(f"{digest}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            with open(temp, "wb") as file:
                file.write(blob)
            _touch(temp)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return len(blob)

    def remove(self, digests: Iterable[str]) -> None:
        for digest in digests:
            with contextlib.suppress(OSError):
                self.path(digest).unlink()


def _encode(digest: str, audio: SynthesizedAudio) -> bytes:
    fmt = audio.format.value.encode()
    header = _HEADER.pack(_MAGIC, bytes.fromhex(digest), fmt, len(audio.data), hashlib.sha256(audio.data).digest())
    return header + audio.data


def _decode(blob: bytes, digest: str) -> SynthesizedAudio | None:
    if len(blob) < _HEADER.size:
        return None
    magic, key, fmt, length, checksum = _HEADER.unpack_from(blob)
    data = blob[_HEADER.size :]
    if magic != _MAGIC or key != bytes.fromhex(digest) or length != len(data) or length == 0:
        return None
    try:
        audio_format = AudioFormat(fmt.rstrip(b"\0").decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if hashlib.sha256(data).digest() != checksum:
        return None
    return SynthesizedAudio(data, audio_format)


def _touch(path: Path) -> None:
    """Set the file's times to now, to the nanosecond: the kernel's own stamps are coarse (a few ms), too
    coarse to order entries used in quick succession."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def _is_hex(name: str, length: int) -> bool:
    return len(name) == length and all(c in "0123456789abcdef" for c in name)


# --- streams in flight --------------------------------------------------------------------------------------


class _Flight:
    """One synthesis (or disk read) under way: the chunks so far, and whoever is reading them."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.chunks: list[bytes] = []
        self.format: AudioFormat | None = None
        self.origin: Origin | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done = False
        self.error: BaseException | None = None
        self.readers = 0
        self.persist = False  # some reader wants it on disk
        self.task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    def begin(self, audio_format: AudioFormat, origin: Origin) -> None:
        self.format, self.origin = audio_format, origin
        if not self.opened.done():
            self.opened.set_result(None)

    def push(self, chunk: bytes) -> None:
        if chunk:
            self.chunks.append(chunk)
            self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.done, self.error = True, error
        if not self.opened.done():
            if error is None:
                self.opened.cancel()
            else:
                self.opened.set_exception(error)
                self.opened.exception()  # retrieved: whoever awaits it re-raises it, nobody else must log it
        self._wake()

    async def progress(self, seen: int) -> None:
        """Return once there are more than ``seen`` chunks or the flight is over."""
        while len(self.chunks) <= seen and not self.done:
            event = self._progress
            await event.wait()

    def _wake(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()


class _FlightStream:
    """One reader of a :class:`_Flight`: every chunk from the first, then the live ones, then the outcome."""

    def __init__(self, release: Callable[[_Flight], None], flight: _Flight) -> None:
        self._release = release
        self._flight = flight
        self._closed = False
        self._iterated = False

    @property
    def format(self) -> AudioFormat:
        assert self._flight.format is not None
        return self._flight.format

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise RuntimeError("a speech stream can only be read once")
        self._iterated = True
        flight, index = self._flight, 0
        try:
            while True:
                if index < len(flight.chunks):
                    index += 1
                    yield flight.chunks[index - 1]
                elif flight.done:
                    if flight.error is not None:
                        raise flight.error
                    return
                else:
                    await flight.progress(index)
        finally:
            self._detach()

    async def aclose(self) -> None:
        self._detach()

    def _detach(self) -> None:
        if not self._closed:
            self._closed = True
            self._release(self._flight)


class SynthesisAbandoned(SpeechError):
    """The synthesis stopped because the bot is shutting down."""


# --- the cache ----------------------------------------------------------------------------------------------


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
        self._in_flight: dict[str, _Flight] = {}
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
            flight = self._in_flight[digest] = _Flight(digest)
            flight.task = asyncio.create_task(self._produce(flight, request, backend), name="audio-cache-fill")
            self._producers.add(flight.task)
            flight.task.add_done_callback(self._producers.discard)
        flight.readers += 1
        flight.persist = flight.persist or persist
        stream = _FlightStream(self._release, flight)
        try:
            await asyncio.shield(flight.opened)
        except BaseException:
            stream._detach()
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

    async def _produce(self, flight: _Flight, request: SpeechRequest, backend: SpeechBackend) -> None:
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

    def _forget(self, flight: _Flight) -> None:
        if self._in_flight.get(flight.digest) is flight:
            del self._in_flight[flight.digest]

    def _release(self, flight: _Flight) -> None:
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

    async def _write(self, flight: _Flight, audio: SynthesizedAudio) -> None:
        try:
            await self.start()
            disk = self.disk
            if disk is None or len(audio.data) + _HEADER.size > self.disk_limit:
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
            _size(self._disk_bytes),
            _size(self.disk_limit),
            _size(self.memory_limit),
        )
