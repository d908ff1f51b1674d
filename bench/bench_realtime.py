"""The Realtime engine against the /audio/speech client: time to first audio (cold and warm session), the bot's
own overhead over the first delta, and CPU per second of audio.

Run: ``python bench/bench_realtime.py [--runs 30] [--delay 0.15]`` (needs the ``test`` extra: the loopback
Realtime API and speech endpoint under ``tests/loopback/``). Bounded by ``--timeout`` (default 600 s).

``--session-delay`` adds a server-side wait before ``session.created``: the service's own time to set up a
session, which a cold request pays and a warm one does not (the loopback answers at once otherwise, and has no
network round trips: a real cold start also pays TCP, TLS and the upgrade).

Two processes, so the bot side's CPU is its own. This process is the service: the loopback Realtime API and the
loopback /audio/speech endpoint, both with the same server-side delay before the first audio (``--delay``: the
Realtime double holds its first delta that long, the speech double its response headers), both serving piper's
speech of the same texts (synthesized before the runs), both recording when the first audio left. The child
process is the bot side: the product's engines (``RealtimeSpeechEngine`` through its session pool,
``OpenAISpeechClient`` over a kept-alive connection), asked in turn, run after run:

* **speech**: ``/audio/speech``, Ogg Opus (passed through by the bot: no encoding);
* **realtime warm**: a session from the pool (the engine's spare, then the session of that voice);
* **realtime cold**: a new engine each run (WebSocket upgrade, ``session.created``, ``session.update``, then
  the response);
* **realtime pcm**: warm, ``pcm`` asked (deltas passed through), for the CPU of the engine without encoding.

Time to first audio is from calling ``open()`` to holding the first bytes of the requested format (Ogg Opus for
all but the pcm row), on the child's clock. Overhead over the first delta is that moment minus when the double
sent the first delta (or the first byte), on one clock (``time.monotonic``, system-wide). CPU is the child's
``time.process_time`` while it reads each whole stream, per second of audio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEY = "sk-bench-0123456789"
MODEL = "gpt-realtime-2.1-mini"
TEXTS = [
    "Hello world, this is a test of the speech system.",
    "Good morning everyone, the meeting starts in five minutes.",
    "Please join the voice channel when you are ready.",
    "Thank you for listening, and have a wonderful day.",
]
PATHS = ("speech", "realtime warm", "realtime cold", "realtime pcm")


# -- the bot side (child process) -----------------------------------------------------------------------------


async def client(args: argparse.Namespace) -> None:
    import aiohttp

    from bot.audio.formats import AudioFormat
    from bot.speech.client import OpenAISpeechClient, Timeouts
    from bot.speech.models import SpeechRequest
    from bot.speech.realtime import RealtimeSpeechEngine

    voices = ("alloy", "marin")
    timeouts = Timeouts(connect=5, first_byte=10, between_chunks=10)
    async with aiohttp.ClientSession() as http:

        def realtime() -> RealtimeSpeechEngine:
            return RealtimeSpeechEngine(http, base_url=args.realtime, api_key=KEY, model=MODEL, voices=voices,
                                        default_voice="marin", timeouts=timeouts)

        speech = OpenAISpeechClient(http, base_url=args.speech, api_key=KEY, model="gpt-4o-mini-tts",
                                    voices=voices, timeouts=timeouts)
        warm = realtime()
        await warm.start()
        await asyncio.sleep(0.5)  # the spare session is open and set up

        async def one(path: str, text: str, measured: bool) -> None:
            fmt = AudioFormat.PCM if path == "realtime pcm" else AudioFormat.OPUS
            request = SpeechRequest(text=text, voice="marin", format=fmt)
            engine = realtime() if path == "realtime cold" else warm
            backend = speech if path == "speech" else engine
            cpu0, t0 = time.process_time(), time.monotonic()
            stream = await backend.open(request)
            chunks = aiter(stream)
            first = await anext(chunks)
            t1 = time.monotonic()
            size = len(first) + sum([len(chunk) async for chunk in chunks])
            cpu = time.process_time() - cpu0
            await stream.aclose()
            if engine is not warm:
                await engine.close()
            if measured:
                print(json.dumps({"path": path, "text": text, "t0": t0, "t1": t1, "cpu": cpu, "bytes": size}),
                      flush=True)
            else:
                print(json.dumps({"path": path, "warmup": True}), flush=True)

        for text in TEXTS:  # warm-up: every text through every path (the double's piper runs once per text)
            for path in PATHS:
                await one(path, text, measured=False)
        for run in range(args.runs):
            for path in PATHS:
                await one(path, TEXTS[run % len(TEXTS)], measured=True)
        await warm.close()


# -- the service side (this process) --------------------------------------------------------------------------


async def service(args: argparse.Namespace) -> dict[str, Any]:
    from tests.loopback.realtime_server import RealtimeEndpoint
    from tests.loopback.speech_server import Fault, SpeechEndpoint

    class TimedSpeech(SpeechEndpoint):
        """The /audio/speech double, also recording when each response's first byte left."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.first_byte: list[float] = []

        async def _stream(self, request: Any, *rest: Any) -> Any:
            self.first_byte.append(time.monotonic())  # the status line and the first chunk go out next
            return await super()._stream(request, *rest)

    realtime = RealtimeEndpoint(api_key=KEY, first_delta_delay=args.delay, session_delay=args.session_delay,
                                delta_interval=0.01, check_own_events=False)
    speech = TimedSpeech(api_key=KEY, chunks=16)
    async with realtime, speech:
        speech.inject(Fault(first_byte_delay=args.delay, times=10_000, chunk_delay=0.01))
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", "--realtime-url", realtime.base_url, "--speech-url",
            speech.base_url, "--runs", str(args.runs), stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        rows: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(args.timeout):
                assert child.stdout is not None
                async for line in child.stdout:
                    rows.append(json.loads(line))
                await child.wait()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert child.returncode == 0, "the bot side failed"
        assert realtime.failures == [] and speech.failures == [], (realtime.failures, speech.failures)
        # match each request to its first audio on the service side, in order
        realtime_first = [r.first_delta_at for r in realtime.responses]
        speech_first = list(speech.first_byte)
        pcm_seconds = {r.text: len(r.pcm) / 48_000 for r in realtime.responses}
        for row in rows:
            queue = speech_first if row["path"] == "speech" else realtime_first
            sent = queue.pop(0)
            if not row.get("warmup"):
                row["sent"] = sent
        return {"rows": [r for r in rows if not r.get("warmup")], "seconds": pcm_seconds}


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    rows, audio = result["rows"], result["seconds"]
    seconds = statistics.mean(audio.values())

    def stats(values: list[float]) -> str:
        q = statistics.quantiles(values, n=10)
        return f"{statistics.median(values) * 1000:7.1f} {q[8] * 1000:7.1f} {min(values) * 1000:7.1f}"

    print(f"\n{args.runs} runs per path, server-side delay {args.delay * 1000:.0f} ms before the first audio "
          f"(and {args.session_delay * 1000:.0f} ms before session.created), texts of {seconds:.1f} s of speech on "
          "average")
    print(f"{'path':15} | first audio p50 / p90 / min (ms) | overhead over the first delta p50 / p90 / min (ms) "
          f"| CPU ms per s of audio")
    by_path = {path: [r for r in rows if r["path"] == path] for path in PATHS}
    for path, mine in by_path.items():
        first = [r["t1"] - r["t0"] for r in mine]
        overhead = [r["t1"] - r["sent"] for r in mine]
        cpu = statistics.median(r["cpu"] / audio[r["text"]] for r in mine) * 1000
        print(f"{path:15} | {stats(first)} | {stats(overhead)} | {cpu:6.2f}")
    base = statistics.median(r["t1"] - r["t0"] for r in by_path["speech"])
    for path in ("realtime warm", "realtime cold"):
        mine = statistics.median(r["t1"] - r["t0"] for r in by_path[path])
        print(f"ratio {path} / speech (first audio, p50): {mine / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.15, help="server-side seconds before the first audio")
    parser.add_argument("--session-delay", type=float, default=0.0,
                        help="server-side seconds before session.created (a cold session's set-up at the service)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--realtime-url", dest="realtime", help=argparse.SUPPRESS)
    parser.add_argument("--speech-url", dest="speech", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        if profile := os.environ.get("BENCH_PROFILE"):  # a cProfile of the bot side, written to that file
            import cProfile

            cProfile.runctx("asyncio.run(client(args))", globals(), {"args": args}, profile)
        else:
            asyncio.run(client(args))
        return
    started = time.monotonic()
    report(asyncio.run(service(args)), args)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
