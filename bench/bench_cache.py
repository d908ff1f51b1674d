"""Latency of the audio cache: a memory hit, a disk hit, and a miss against a loopback HTTP endpoint.

Run: ``python bench/bench_cache.py [--rounds N]`` (needs the ``test`` extra for the loopback speech endpoint).

Bodies are 8 s of a tone encoded as the endpoint would send them (Ogg Opus and WAV; their sizes match real
speech of that length). Each measurement is ``open`` + reading the whole body through ``AudioCache``, as
``/speak`` does; for misses also the time to the first chunk (what voice playback waits for), next to the
same request made straight to the client without a cache. The endpoint double answers at once, so a miss
here is the cost of a localhost HTTP round trip, not of synthesis (a real endpoint adds 0.3–3 s). Disk hits
read files that are in the OS page cache (recently written), as a busy bot's hot entries would be.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.speech.cache import MIB, AudioCache
from bot.speech.client import OpenAISpeechClient
from bot.speech.models import SpeechBackend, SpeechRequest, read_all

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.loopback.speech_server import SpeechEndpoint

KEY = "sk-bench-0123456789"
RATE = 24_000
_texts = itertools.count()


def tone(seconds: float = 8.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def fixed(body: bytes, content_type: str) -> Callable[[Any], Awaitable[tuple[bytes, str]]]:
    async def audio(_: Any) -> tuple[bytes, str]:
        return body, content_type

    return audio


def new_request(fmt: AudioFormat) -> SpeechRequest:
    return SpeechRequest(text=f"benchmark sentence number {next(_texts)}", voice="alloy", format=fmt)


async def timed(backend: SpeechBackend | AudioCache, request: SpeechRequest) -> tuple[float, float, int]:
    """(ms to the first chunk, ms to the whole body, bytes)."""
    started = time.perf_counter()
    stream = await backend.open(request)
    first = None
    size = 0
    try:
        async for chunk in stream:
            if first is None:
                first = time.perf_counter()
            size += len(chunk)
    finally:
        await stream.aclose()
    done = time.perf_counter()
    return ((first or done) - started) * 1000, (done - started) * 1000, size


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.3f} / {p95:.3f}"


async def bench_format(fmt: AudioFormat, rounds: int, tmp: Path) -> list[tuple[str, str, str, int]]:
    body = encode_pcm(tone(), RATE, fmt)
    rows: list[tuple[str, str, str, int]] = []
    async with SpeechEndpoint(api_key=KEY, audio=fixed(body, "application/octet-stream"), chunks=16) as endpoint, \
            aiohttp.ClientSession() as http:
        client = OpenAISpeechClient(http, base_url=endpoint.base_url, api_key=KEY, model="tts-1", voices=["alloy"])
        cache = AudioCache(client, namespace="bench", memory_bytes=256 * MIB, disk_dir=tmp / fmt.value,
                           disk_bytes=1024 * MIB)
        disk_only = AudioCache(client, namespace="bench", memory_bytes=0, disk_dir=tmp / fmt.value,
                               disk_bytes=1024 * MIB)
        await cache.start()
        await disk_only.start()

        async def run(label: str, backend: SpeechBackend | AudioCache, make: Callable[[], SpeechRequest]) -> None:
            for _ in range(3):  # warm-up
                await timed(backend, make())
            results = [await timed(backend, make()) for _ in range(rounds)]
            endpoint.requests.clear()
            endpoint.served.clear()
            rows.append((label, summary([r[0] for r in results]), summary([r[1] for r in results]), results[0][2]))

        await run("miss, no cache (client only)", client, lambda: new_request(fmt))
        await run("miss through the cache", cache, lambda: new_request(fmt))
        hot = new_request(fmt)
        await read_all(await cache.open(hot))
        await cache.flush()  # the entry is on disk now
        await run("memory hit", cache, lambda: hot)
        await run("disk hit", disk_only, lambda: hot)
        await cache.shutdown()
        await disk_only.shutdown()
    return rows


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        print(f"{rounds} rounds each; ms, median / p95")
        print("| body | path | first chunk | whole body |")
        print("|---|---|---|---|")
        for fmt in (AudioFormat.OPUS, AudioFormat.WAV):
            for label, first, whole, size in await bench_format(fmt, rounds, Path(tmp)):
                print(f"| {fmt.value} {size / 1024:.0f} KiB | {label} | {first} | {whole} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
