"""Read-aloud under load: 50 guilds × 10 messages/s for 60 s, every message accounted for; and read-aloud
latency with the moderation hold in both hold modes.

Run: ``python bench/bench_readaloud.py [guilds] [messages-per-second-per-guild] [seconds] [--mode early|strict]
[--delete FRACTION]`` (the load), or ``python bench/bench_readaloud.py latency`` (the latency table).

``--delete`` deletes that share of the messages (every n-th) halfway through their hold, as a moderator would;
reported: how many were deleted while waiting, that none of them was played, and how many early syntheses were
wasted on them (``--mode early``, the default: synthesis during the hold).

``latency``: one message at a time per guild (5 guilds × 4 messages, nothing queued behind another), message →
first packet p50 for the endpoint's first byte at 150 ms and at 1.2 s, in the early and the strict hold mode with
the default 1 s hold; then the offline engine (piper, in process) with the hold at 0 and six-word messages.

What runs for real: the read-aloud service (filters, fair held queue, cleaning, name prefixes, synthesis cache,
policy checks and usage counting on a SQLite store), the speech client over HTTP against the loopback speech
endpoint, and each guild's ``GuildPlayer`` with its Opus source and packetizer. What is doubled: Discord (messages
enter ``ReadAloud.on_message`` as the cog would pass them, already parsed) and the voice connection (a thread
per guild reads the source every 20 ms like discord.py's player, and records what it played instead of sending
UDP). Every reply is the same 60 ms Ogg Opus clip, so playback (about 10 items/s per guild) can keep up.

Each guild has 5 authors taking turns; every text is distinct (so each is a speech request). Reported: messages
sent, read, dropped by the full-queue policy and lost (neither read nor dropped: must be 0), per-author order
violations (must be 0), speech requests, delay from message to first packet played, event loop lag, CPU and
resident memory over time (flat = no growth once warm).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import numpy as np

from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.config import load_settings
from bot.policy import Policy
from bot.readaloud.early import Waste
from bot.readaloud.filters import MessageFacts
from bot.readaloud.reader import ReadAloud
from bot.readaloud.utterance import Names
from bot.setting_choices import HoldMode, SayName
from bot.speech.cache import AudioCache
from bot.speech.factory import SERVICE_LABEL, cache_namespace, make_speech_backend
from bot.speech.failover import Engine, FailoverSpeech
from bot.speech.models import SpeechRequest, read_all
from bot.speech_service import SpeechService
from bot.storage import Store
from bot.text import MessageInput
from bot.usage import UsageLedger
from bot.voice.guild_session import VoiceSession
from bot.voice.sessions import VoiceLimits, VoiceSessions

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.loopback.speech_server import SpeechEndpoint  # noqa: E402

AUTHORS = 5
KEY = "sk-bench"
TEXT = re.compile(r"message (\d+) from (\d+)")


def clip() -> bytes:
    """60 ms of a quiet tone as Ogg Opus (three 20 ms packets)."""
    t = np.arange(int(0.06 * 48_000)) / 48_000
    tone = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16)
    return encode_pcm(np.repeat(tone, 2).tobytes(), 48_000, AudioFormat.OPUS)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class VoiceDouble:
    """A ``discord.VoiceClient`` stand-in: plays on its own thread at 20 ms per packet, like discord.py."""

    def __init__(self, guild_id: int, played: list[tuple[str, float]]) -> None:
        self.guild = SimpleNamespace(id=guild_id)
        self.channel = SimpleNamespace(id=guild_id * 10, members=[])
        self.session: VoiceSession | None = None
        self._played = played
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop = asyncio.get_running_loop()

    def is_connected(self) -> bool:
        return True

    def is_playing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def is_paused(self) -> bool:
        return False

    def stop(self) -> None:
        self._stop.set()

    async def disconnect(self, *, force: bool = False) -> None:
        self._stop.set()

    def play(self, source: Any, *, after: Any) -> None:
        assert self.session is not None and self.session.player.current_item is not None
        text = self.session.player.current_item.request.text
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(source, after, text, self._stop), daemon=True)
        self._thread.start()

    def _pump(self, source: Any, after: Any, text: str, stop: threading.Event) -> None:
        started = None
        next_at = time.perf_counter()
        while not stop.is_set():
            packet = source.read()
            if not packet:
                break
            if started is None:
                started = time.monotonic()
            next_at += 0.02
            time.sleep(max(0.0, next_at - time.perf_counter()))
        source.cleanup()
        if started is not None:
            self._played.append((text, started))
        after(None)


class Rig:
    """The bot's read-aloud stack for ``guilds`` guilds against the loopback endpoint (or the offline engine),
    each guild with a voice double; ``first_byte``: seconds the endpoint holds its answer back."""

    def __init__(self, guilds: int, *, hold: float = 1.0, mode: HoldMode = HoldMode.EARLY, first_byte: float = 0.0,
                 offline: bool = False) -> None:
        self.guilds, self.hold, self.mode, self.first_byte, self.offline = guilds, hold, mode, first_byte, offline
        self.played: dict[int, list[tuple[str, float]]] = defaultdict(list)
        self.requests = 0

    async def __aenter__(self) -> Rig:
        body = clip()

        async def audio(_: Any) -> tuple[bytes, str]:
            if self.first_byte:
                await asyncio.sleep(self.first_byte)
            return body, "audio/ogg"

        self.tmp = tmp = Path(tempfile.mkdtemp(prefix="bench-readaloud-"))
        self.endpoint = await SpeechEndpoint(api_key=KEY, audio=audio).__aenter__()
        self.http = aiohttp.ClientSession()
        env = {"DATA_DIR": str(tmp), "SPEECH_API_BASE_URL": self.endpoint.base_url, "SPEECH_API_KEY": KEY,
               "SPEECH_MODEL": "tts-1", "SPEECH_VOICES": "alloy"}
        if self.offline:
            env.update(SPEECH_API_KEY="", SPEECH_BACKEND="local")
        settings = load_settings(env)
        self.store = store = await Store.open(f"sqlite:///{tmp / 'bench.db'}")
        self.backend = backend = make_speech_backend(settings, self.http)
        self.cache = cache = AudioCache(backend, namespace=cache_namespace(settings))  # memory tier only
        limits = VoiceLimits(idle_timeout=3600, alone_timeout=3600, max_queue=20, stall_timeout=10)
        self.sessions = sessions = VoiceSessions(cache, limits)
        for guild_id in range(1, self.guilds + 1):
            voice = VoiceDouble(guild_id, self.played[guild_id])
            voice.session = sessions._sessions[guild_id] = VoiceSession(sessions, voice)  # type: ignore[arg-type]
            await store.update_guild_settings(guild_id, say_name=SayName.NEVER, hold_mode=self.mode)
        speech = FailoverSpeech(cache, [Engine("openai", SERVICE_LABEL, cache.namespace, backend)])
        self.speaking = SpeechService(speech, Policy(settings, store), UsageLedger(store), settings)
        self.service = ReadAloud(sessions, store, self.speaking, hold=self.hold, queue_limit=limits.max_queue)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.count_requests()
        await self.service.close()
        await self.speaking.ledger.close()
        await self.sessions.close()
        await self.cache.shutdown()
        await self.backend.close()
        await self.store.close()
        await self.http.close()
        await self.endpoint.__aexit__(None, None, None)

    def count_requests(self) -> None:
        self.requests += len(self.endpoint.requests)  # the double's own records are not the bot's memory
        self.endpoint.requests.clear()
        self.endpoint.served.clear()

    async def say(self, guild_id: int, seq: int, author: int) -> int:
        content = f"message {seq} from {author} in {guild_id}"  # six words
        facts = MessageFacts(channel_id=guild_id * 10, author_id=author, content=content,
                             author_voice_channel_id=guild_id * 10)
        message_id = guild_id * 1_000_000 + seq
        await self.service.on_message(guild_id, message_id, facts, Names("A", None, "a"),
                                      lambda name, _mode, c=content: MessageInput(content=c, author_name=name))
        return message_id

    async def drain(self) -> None:
        for _ in range(600):  # until nothing waits or plays
            await asyncio.sleep(0.1)
            busy = [g for g in range(1, self.guilds + 1) if (r := self.service.reader(g)) is not None and len(r.queue)]
            playing = [g for g in range(1, self.guilds + 1) if self.sessions._sessions[g].player.playing]
            if not busy and not playing:
                return

    def dropped(self) -> int:
        return sum(r.dropped for g in range(1, self.guilds + 1) if (r := self.service.reader(g)) is not None)


async def main(guilds: int, rate: float, seconds: float, mode: HoldMode = HoldMode.EARLY, delete: float = 0.0
               ) -> None:
    every = round(1 / delete) if delete else 0  # every n-th message is deleted during its hold
    async with Rig(guilds, mode=mode) as rig:
        service, endpoint = rig.service, rig.endpoint
        sent_at: dict[tuple[int, int], float] = {}
        deleted: set[tuple[int, int]] = set()  # deleted while still waiting (so never to be read)
        deletions: set[asyncio.Task[None]] = set()
        lags: list[float] = []
        samples: list[tuple[float, float, float]] = []  # (t, rss MiB, cpu s)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def delete_later(guild_id: int, seq: int, message_id: int) -> None:
            await asyncio.sleep(rig.hold / 2)
            reader = service.reader(guild_id)
            if reader is not None and message_id in reader.queue:
                deleted.add((guild_id, seq))
            service.on_delete(guild_id, [message_id])

        async def guild_traffic(guild_id: int) -> None:
            interval = 1 / rate
            for seq in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + seq * interval + guild_id * 0.001 - loop.time()))
                sent_at[(guild_id, seq)] = time.monotonic()
                message_id = await rig.say(guild_id, seq, seq % AUTHORS + 1)
                if every and seq % every == every - 1:
                    task = asyncio.create_task(delete_later(guild_id, seq, message_id))
                    deletions.add(task)
                    task.add_done_callback(deletions.discard)

        async def monitor() -> None:
            while True:
                before = loop.time()
                await asyncio.sleep(0.1)
                lags.append(loop.time() - before - 0.1)
                rig.count_requests()
                if not samples or loop.time() - start - samples[-1][0] >= 5:
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    samples.append((loop.time() - start, rss_mib(), usage.ru_utime + usage.ru_stime))

        watcher = asyncio.create_task(monitor())
        await asyncio.gather(*(guild_traffic(g) for g in range(1, guilds + 1)))
        sending_took = loop.time() - start
        await rig.drain()
        watcher.cancel()
        dropped = rig.dropped()
        early = service.early
        rig.count_requests()
        del endpoint
    played = rig.played
    cache = rig.cache

    read = 0
    violations = 0
    heard_deleted = 0
    delays: list[float] = []
    for guild_id, items in played.items():
        last: dict[int, int] = {}
        for text, started in items:
            match = TEXT.search(text)
            assert match is not None, text
            seq, author = int(match.group(1)), int(match.group(2))
            if seq <= last.get(author, -1):
                violations += 1
            last[author] = seq
            heard_deleted += (guild_id, seq) in deleted
            delays.append(started - sent_at[(guild_id, seq)])
            read += 1
    total = len(sent_at)
    lost = total - read - dropped - len(deleted)
    delays.sort()
    print(f"guilds={guilds} rate={rate}/s per guild seconds={seconds} hold_mode={mode} "
          f"(sending took {sending_took:.1f} s)")
    print(f"messages sent={total} read={read} dropped_by_policy={dropped} deleted_while_waiting={len(deleted)} "
          f"lost={lost} order_violations={violations} deleted_but_played={heard_deleted}")
    print(f"speech requests={rig.requests} cache={cache.stats}")
    print(f"early syntheses: started={early.started} used={early.used} refused_or_failed={early.refused} "
          f"wasted={dict(early.wasted) or 0} (wasted on deleted messages: {early.wasted[Waste.DELETED]})")
    print(f"message → first packet: p50={statistics.median(delays) * 1000:.0f} ms "
          f"p95={delays[int(len(delays) * 0.95)] * 1000:.0f} ms max={delays[-1] * 1000:.0f} ms")
    print(f"event loop lag: p50={statistics.median(lags) * 1000:.1f} ms max={max(lags) * 1000:.0f} ms")
    print("t s | RSS MiB | CPU s")
    for t, rss, cpu in samples:
        print(f"{t:5.0f} | {rss:7.1f} | {cpu:6.1f}")


async def latency_run(*, mode: HoldMode, hold: float, first_byte: float, offline: bool = False, guilds: int = 5,
                      messages: int = 4) -> tuple[list[float], list[float]]:
    """Message → first packet, and message → request at the endpoint (offline: the engine's own time to its first
    bytes for the same texts), one message at a time per guild."""
    async with Rig(guilds, hold=hold, mode=mode, first_byte=first_byte, offline=offline) as rig:
        if offline:  # load the voice model first: a start-up cost, not a message's
            await read_all(await rig.backend.open(SpeechRequest(text="warm up", voice="alloy")))
        sent_at: dict[tuple[int, int], float] = {}
        asked_at: list[float] = []
        gap = hold + first_byte + (3.0 if offline else 0.8)  # the offline voice's six words last ~1.7 s

        async def guild_traffic(guild_id: int) -> None:
            await asyncio.sleep(guild_id * gap / guilds)  # spread over the gap: one request at a time
            for seq in range(messages):
                sent_at[(guild_id, seq)] = time.monotonic()
                await rig.say(guild_id, seq, 1)
                await asyncio.sleep(gap)

        await asyncio.gather(*(guild_traffic(g) for g in range(1, guilds + 1)))
        await rig.drain()
        if not offline:
            texts = {f"message {seq} from 1 in {guild_id}": at for (guild_id, seq), at in sent_at.items()}
            asked_at = [request.received_at - texts[request.json["input"]] for request in rig.endpoint.requests]
        else:  # the baseline: the engine's own time to its first bytes, the same texts asked directly
            for guild_id, seq in sent_at:
                began = time.monotonic()
                stream = await rig.backend.open(SpeechRequest(text=f"message {seq} from 1 in {guild_id}",
                                                              voice="alloy"))
                async for _ in stream:
                    asked_at.append(time.monotonic() - began)
                    break
                await stream.aclose()
    delays = [started - sent_at[(guild_id, int(TEXT.search(text).group(1)))]  # type: ignore[union-attr]
              for guild_id, items in rig.played.items() for text, started in items]
    assert len(delays) == guilds * messages, f"{len(delays)} of {guilds * messages} played"
    return delays, asked_at


async def latency() -> None:
    print("message → first packet (p50, p95) and message → request at the endpoint (p50), 5 guilds × 4 messages")
    print("hold | hold mode | first byte | first packet p50 | p95 | request p50 | target")
    for first_byte in (0.15, 1.2):
        for mode in (HoldMode.EARLY, HoldMode.STRICT):
            delays, asked = await latency_run(mode=mode, hold=1.0, first_byte=first_byte)
            delays.sort()
            target = f"≤ {max(1.0, first_byte) * 1000 + 50:.0f} ms" if mode is HoldMode.EARLY else "(today's)"
            print(f"1 s | {mode} | {first_byte * 1000:.0f} ms | {statistics.median(delays) * 1000:.0f} ms | "
                  f"{delays[int(len(delays) * 0.95)] * 1000:.0f} ms | {statistics.median(asked) * 1000:.0f} ms | "
                  f"{target}")
    delays, engine = await latency_run(mode=HoldMode.EARLY, hold=0.0, first_byte=0.0, offline=True, guilds=1,
                                       messages=10)
    delays.sort()
    print(f"0 s | early | offline engine, six words | {statistics.median(delays) * 1000:.0f} ms | "
          f"{delays[int(len(delays) * 0.95)] * 1000:.0f} ms | - | ≤ 300 ms")
    print(f"    the offline engine alone (same run, same texts): first bytes p50 "
          f"{statistics.median(engine) * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("numbers", nargs="*", help="[latency] or [guilds] [rate] [seconds] (default 50 10 60)")
    parser.add_argument("--mode", choices=[m.value for m in HoldMode], default=HoldMode.EARLY.value)
    parser.add_argument("--delete", type=float, default=0.0, help="share of messages deleted during their hold")
    options = parser.parse_args()
    if options.numbers[:1] == ["latency"]:
        asyncio.run(latency())
    else:
        args = [float(a) for a in options.numbers]
        asyncio.run(main(int(args[0]) if args else 50, args[1] if len(args) > 1 else 10.0,
                         args[2] if len(args) > 2 else 60.0, HoldMode(options.mode), options.delete))
