"""The audio cache: one request per distinct (source, voice, speed, format, instructions, text), streamed to
every reader while it downloads, kept in memory and on disk within their bounds, and never when it failed.

What is asserted is what the wrapped backend was asked, what readers received, and what is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.audio.formats import AudioFormat
from bot.speech.cache import AudioCache, Origin
from bot.speech.errors import SpeechError
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SpeechStream, SynthesizedAudio, read_all

KIB = 1024


class CountingBackend:
    """Answers with the request text as bytes after ``release`` is set; counts what it was asked."""

    name = "counting"

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[SpeechRequest] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = fail

    async def open(self, request: SpeechRequest) -> BufferedSpeechStream:
        self.requests.append(request)
        await self.release.wait()
        if self.fail:
            raise SpeechError("down")
        # raw pcm: whole 16-bit samples are all the cache's integrity check can ask of it
        return BufferedSpeechStream(SynthesizedAudio(request.text.encode() * 10, AudioFormat.PCM))

    async def close(self) -> None:
        return None


class SteppedBackend:
    """A streaming backend the test drives: each body is ``size`` bytes in 4 chunks; after the first chunk,
    every chunk waits for ``step()``. ``cut`` makes a stream fail after its second chunk; ``answer`` is the
    sniffed format it reports (as a server that sends WAV whatever was asked)."""

    name = "stepped"

    def __init__(self, *, size: int = 4 * KIB, answer: AudioFormat = AudioFormat.PCM) -> None:
        self.requests: list[SpeechRequest] = []
        self.size = size
        self.answer = answer
        self.cut = False
        self.closed = 0
        self.finished = 0
        self._steps = asyncio.Semaphore(0)
        self.gated = True

    def body(self, request: SpeechRequest) -> bytes:
        """``size`` bytes of intact audio of the ``answer`` format (raw pcm, or pcm in a WAV header)."""
        seed = request.text.encode() or b"-"
        samples = (seed * (self.size // len(seed) + 1))[: self.size & ~1]
        if self.answer is AudioFormat.WAV:
            samples = samples[: len(samples) - 44]
            header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(samples), b"WAVE", b"fmt ", 16, 1, 1,
                                 24_000, 48_000, 2, 16, b"data", len(samples))
            return header + samples
        return samples

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self._steps.release()

    async def open(self, request: SpeechRequest) -> SpeechStream:
        self.requests.append(request)
        return _SteppedStream(self, self.body(request), cut=self.cut)

    async def close(self) -> None:
        return None


class _SteppedStream:
    def __init__(self, backend: SteppedBackend, body: bytes, *, cut: bool) -> None:
        self._backend = backend
        self._body = body
        self._cut = cut

    @property
    def format(self) -> AudioFormat:
        return self._backend.answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        quarter = len(self._body) // 4
        for index in range(4):
            if index and self._backend.gated:
                await self._backend._steps.acquire()
            if self._cut and index == 2:
                raise SpeechError("The speech service stopped sending audio halfway.")
            yield self._body[index * quarter : (index + 1) * quarter if index < 3 else None]
        self._backend.finished += 1

    async def aclose(self) -> None:
        self._backend.closed += 1


def request(text: str = "hello", **changes: object) -> SpeechRequest:
    fields: dict[str, object] = {"text": text, "voice": "alloy", "format": AudioFormat.OPUS, **changes}
    return SpeechRequest(**fields)  # type: ignore[arg-type]


async def fetch(cache: AudioCache, req: SpeechRequest, *, persist: bool = True) -> tuple[SynthesizedAudio, Origin]:
    stream, origin = await cache.open_tracked(req, persist=persist)
    return await read_all(stream), origin


async def settle() -> None:
    """Let every ready task run (the fill task, a reader, a disk write in a worker thread)."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)


def cache_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


# --- keys and memory ----------------------------------------------------------------------------------------


async def test_identical_requests_are_sent_once_and_any_difference_is_a_new_request() -> None:
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1")
    first, origin = await fetch(cache, request())
    again, origin_again = await fetch(cache, request())
    assert (origin, origin_again) == (Origin.SENT, Origin.MEMORY) and again == first
    for other in (request("hello!"), request(voice="echo"), request(speed=1.5), request(instructions="calm"),
                  request(format=AudioFormat.WAV)):
        assert (await fetch(cache, other))[1] is Origin.SENT
    assert len(backend.requests) == 6
    assert cache.stats.hits == 1 and cache.stats.misses == 6


async def test_the_source_is_part_of_the_key() -> None:
    backend = CountingBackend()
    await fetch(AudioCache(backend, namespace="openai:https://a/v1:tts-1"), request())
    await fetch(AudioCache(backend, namespace="openai:https://a/v1:tts-1-hd"), request())
    assert len(backend.requests) == 2


async def test_memory_is_bounded_least_recently_used_first_out() -> None:
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1", memory_bytes=100)  # each answer is 10 × the text
    for text in ("aaaa", "bbbb", "cccc"):
        await fetch(cache, request(text))
    await fetch(cache, request("aaaa"))  # used again: now the most recent
    await fetch(cache, request("dddd"))  # evicts "bbbb"
    assert cache.stats.memory_bytes <= 100 and cache.stats.memory_entries == 2
    assert (await fetch(cache, request("aaaa")))[1] is Origin.MEMORY
    assert (await fetch(cache, request("bbbb")))[1] is Origin.SENT
    assert (await fetch(cache, request("x" * 20)))[1] is Origin.SENT and cache.stats.memory_bytes <= 100
    assert (await fetch(cache, request("x" * 20)))[1] is Origin.SENT  # too big to keep: asked again


async def test_a_hit_is_served_while_the_backend_fails() -> None:
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1")
    audio, _ = await fetch(cache, request())
    backend.fail = True  # the endpoint is down (or the breaker fails requests fast)
    assert await fetch(cache, request()) == (audio, Origin.MEMORY)
    with pytest.raises(SpeechError):
        await fetch(cache, request("something new"))


# --- in flight: shared and streamed -------------------------------------------------------------------------


async def test_requests_in_flight_are_shared() -> None:
    backend = CountingBackend()
    backend.release.clear()
    cache = AudioCache(backend, namespace="tts-1")
    calls = [asyncio.create_task(fetch(cache, request())) for _ in range(3)]
    await settle()
    assert cache.has(request())
    backend.release.set()
    results = await asyncio.gather(*calls)
    assert len(backend.requests) == 1
    assert sorted(origin.value for _, origin in results) == ["sent", "shared", "shared"]
    assert len({audio.data for audio, _ in results}) == 1


async def test_a_miss_streams_while_it_downloads_and_a_joiner_replays_then_follows() -> None:
    backend = SteppedBackend()
    cache = AudioCache(backend, namespace="tts-1")
    first, origin = await cache.open_tracked(request())
    assert origin is Origin.SENT
    reader = aiter(first)
    head = await anext(reader)  # the first chunk arrives before the rest of the body exists
    assert backend.finished == 0 and head == backend.body(request())[: len(head)]

    backend.step()  # a second chunk arrives; then someone asks for the same audio
    second_chunk = await anext(reader)
    joiner, joined = await cache.open_tracked(request())
    assert joined is Origin.SHARED
    joiner_task = asyncio.create_task(read_all(joiner))
    await settle()
    assert not joiner_task.done()  # it replayed what was there and now follows the download

    backend.step(2)
    rest = [chunk async for chunk in reader]
    await first.aclose()
    whole = head + second_chunk + b"".join(rest)
    assert whole == backend.body(request())
    assert (await joiner_task).data == whole
    assert len(backend.requests) == 1
    assert await fetch(cache, request()) == (SynthesizedAudio(whole, AudioFormat.PCM), Origin.MEMORY)


async def test_failures_reach_every_waiter_and_are_not_cached() -> None:
    backend = CountingBackend(fail=True)
    backend.release.clear()
    cache = AudioCache(backend, namespace="tts-1")
    calls = [asyncio.create_task(fetch(cache, request())) for _ in range(2)]
    await settle()
    backend.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, SpeechError) for result in results)
    assert not cache.has(request())
    backend.fail = False
    assert (await fetch(cache, request()))[1] is Origin.SENT and len(backend.requests) == 2


async def test_a_stream_cut_halfway_fails_every_reader_after_the_same_bytes_and_is_not_cached(tmp_path: Path) -> None:
    backend = SteppedBackend()
    backend.cut = True
    cache = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    received: list[list[bytes]] = [[], []]

    async def read(index: int) -> None:
        stream = await cache.open(request())
        try:
            async for chunk in stream:
                received[index].append(chunk)
        finally:
            await stream.aclose()

    readers = [asyncio.create_task(read(0))]
    await settle()
    readers.append(asyncio.create_task(read(1)))
    await settle()
    backend.step(3)
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(result, SpeechError) and "halfway" in str(result) for result in results)
    assert received[0] == received[1] and len(received[0]) == 2
    await settle()
    assert not cache.has(request()) and cache_files(tmp_path) == []
    backend.cut = False
    backend.gated = False
    assert (await fetch(cache, request()))[1] is Origin.SENT and len(backend.requests) == 2


async def test_when_every_reader_leaves_early_the_download_stops_and_nothing_is_cached() -> None:
    backend = SteppedBackend()
    cache = AudioCache(backend, namespace="tts-1")
    one, _ = await cache.open_tracked(request())
    two, _ = await cache.open_tracked(request())
    await anext(aiter(one))
    await one.aclose()  # one reader skipped: the other still gets everything
    backend.step(3)
    assert (await read_all(two)).data == backend.body(request())

    three, _ = await cache.open_tracked(request("skipped"))
    await anext(aiter(three))
    await three.aclose()  # the only reader left: the download stops
    await settle()
    assert backend.closed == 2 and backend.finished == 1
    assert not cache.has(request("skipped"))
    backend.gated = False
    assert (await fetch(cache, request("skipped")))[1] is Origin.SENT


# --- disk ---------------------------------------------------------------------------------------------------


async def test_audio_survives_a_restart_on_disk_with_its_sniffed_format(tmp_path: Path) -> None:
    backend = SteppedBackend(answer=AudioFormat.WAV)  # asked for opus, the server sent wav
    backend.gated = False
    cache = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    await cache.start()
    audio, _ = await fetch(cache, request())
    await cache.flush()  # waits for the write

    restarted = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    await restarted.start()
    assert restarted.has(request()) and restarted.stats.disk_entries == 1
    again, origin = await fetch(restarted, request())
    assert (again, origin) == (audio, Origin.DISK) and again.format is AudioFormat.WAV
    assert (await fetch(restarted, request()))[1] is Origin.MEMORY
    assert len(backend.requests) == 1


async def test_with_no_memory_tier_hits_come_from_disk(tmp_path: Path) -> None:
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1", memory_bytes=0, disk_dir=tmp_path, disk_bytes=1024 * KIB)
    audio, _ = await fetch(cache, request())
    await cache.flush()
    assert await fetch(cache, request()) == (audio, Origin.DISK)
    assert cache.stats.memory_entries == 0 and len(backend.requests) == 1


async def test_disk_is_bounded_least_recently_used_first_out_across_restarts(tmp_path: Path) -> None:
    backend = SteppedBackend(size=10 * KIB)
    backend.gated = False
    bound = 35 * KIB  # three 10 KiB entries (plus headers) fit, four do not
    cache = AudioCache(backend, namespace="tts-1", memory_bytes=0, disk_dir=tmp_path, disk_bytes=bound)
    for text in ("a", "b", "c"):
        await fetch(cache, request(text))
        await cache.flush()
    await fetch(cache, request("a"))  # a hit touches the file: "a" is now the most recent
    await fetch(cache, request("d"))  # evicts "b"
    await cache.flush()
    assert sum(path.stat().st_size for path in cache_files(tmp_path)) <= bound
    assert len(cache_files(tmp_path)) == 3 and cache.stats.disk_bytes <= bound
    sent = len(backend.requests)
    assert (await fetch(cache, request("b")))[1] is Origin.SENT  # evicts "c", the least recently used now
    await cache.flush()

    # After a restart the order comes from the files' times; a smaller bound evicts the oldest at start-up.
    restarted = AudioCache(backend, namespace="tts-1", memory_bytes=0, disk_dir=tmp_path, disk_bytes=25 * KIB)
    await restarted.start()
    assert restarted.stats.disk_entries == 2 and len(cache_files(tmp_path)) == 2
    assert (await fetch(restarted, request("b")))[1] is Origin.DISK
    assert (await fetch(restarted, request("d")))[1] is Origin.DISK
    assert (await fetch(restarted, request("a")))[1] is Origin.SENT
    assert len(backend.requests) == sent + 2


async def test_an_entry_bigger_than_the_disk_bound_is_not_written(tmp_path: Path) -> None:
    backend = SteppedBackend(size=64 * KIB)
    backend.gated = False
    cache = AudioCache(backend, namespace="tts-1", memory_bytes=0, disk_dir=tmp_path, disk_bytes=32 * KIB)
    await fetch(cache, request())
    await cache.flush()
    assert cache_files(tmp_path) == [] and cache.stats.disk_bytes == 0


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "empty", "another key's file"])
async def test_a_damaged_file_is_removed_and_the_audio_fetched_again(tmp_path: Path, damage: str) -> None:
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1", memory_bytes=0, disk_dir=tmp_path, disk_bytes=1024 * KIB)
    audio, _ = await fetch(cache, request("hello"))
    await fetch(cache, request("other"))
    await cache.flush()
    path = next(p for p in cache_files(tmp_path) if p.name.startswith(cache.key(request("hello"))))
    blob = path.read_bytes()
    if damage == "truncate":  # what a writer without temporary file and rename leaves after a crash
        path.write_bytes(blob[: len(blob) - 7])
    elif damage == "flip a byte":
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        other = next(p for p in cache_files(tmp_path) if p != path)
        path.write_bytes(other.read_bytes())

    restarted = AudioCache(backend, namespace="tts-1", memory_bytes=0, disk_dir=tmp_path, disk_bytes=1024 * KIB)
    await restarted.start()
    assert await fetch(restarted, request("hello")) == (audio, Origin.SENT)
    await restarted.flush()
    assert path.read_bytes() == blob  # written again, whole
    assert await fetch(restarted, request("hello")) == (audio, Origin.DISK)
    assert len(backend.requests) == 3


async def test_leftovers_of_a_crash_are_removed_at_start_and_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    for text in ("one", "two", "three"):
        await fetch(cache, request(text))
    await cache.flush()
    written = cache_files(tmp_path)
    assert len(written) == 3 and all(path.suffix == ".audio" for path in written)

    sub = written[0].parent
    stale, fresh, junk = sub / f"{'0' * 64}.1a2b.tmp", sub / f"{'1' * 64}.3c4d.tmp", sub / "notes.txt"
    for path in (stale, fresh, junk):
        path.write_bytes(b"partial")
    os.utime(stale, (0, 0))  # a crash long ago; ``fresh`` may be another process writing right now
    restarted = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    await restarted.start()
    assert cache_files(tmp_path) == sorted([*written, fresh])
    assert restarted.stats.disk_entries == 3


async def test_an_unusable_cache_directory_leaves_a_working_memory_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("a file where the directory should be")
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1", disk_dir=not_a_directory, disk_bytes=1024 * KIB)
    await cache.start()
    await fetch(cache, request())
    assert (await fetch(cache, request()))[1] is Origin.MEMORY
    await cache.shutdown()
    assert "cache directory" in caplog.text and "memory only" in caplog.text
    assert len(backend.requests) == 1


async def test_names_and_logs_reveal_no_text_and_shutdown_logs_the_hit_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "my secret sentence"
    backend = CountingBackend()
    cache = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    await cache.start()
    for _ in range(3):
        await fetch(cache, request(secret))
    await cache.shutdown()
    await cache.shutdown()  # logged once
    names = [str(path.relative_to(tmp_path)) for path in cache_files(tmp_path)]
    assert len(names) == 1 and all(set(name) <= set("0123456789abcdef/.audio") for name in names)
    assert secret not in caplog.text and cache.key(request(secret)) not in caplog.text
    assert caplog.text.count("2 hits (memory 2, disk 0, shared 0), 1 misses, hit rate 67%") == 1


async def test_audio_fetched_without_persist_stays_in_memory_unless_a_sharer_wants_it_on_disk(tmp_path: Path) -> None:
    backend = SteppedBackend()
    cache = AudioCache(backend, namespace="tts-1", disk_dir=tmp_path, disk_bytes=1024 * KIB)
    await cache.start()
    backend.gated = False
    await fetch(cache, request("chat message"), persist=False)
    await cache.flush()
    assert cache_files(tmp_path) == [] and cache.has(request("chat message"))  # in memory

    backend.gated = True
    private, _ = await cache.open_tracked(request("said twice"), persist=False)
    public, _ = await cache.open_tracked(request("said twice"))  # joins, and wants it kept
    backend.step(3)
    assert (await read_all(private)).data == (await read_all(public)).data
    await cache.flush()
    assert len(cache_files(tmp_path)) == 1 and len(backend.requests) == 2
