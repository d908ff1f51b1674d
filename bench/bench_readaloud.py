"""Read-aloud under load: 50 guilds × 10 messages/s for 60 s, every message accounted for.

Run: ``python bench/bench_readaloud.py [guilds] [messages-per-second-per-guild] [seconds]``.

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
from bot.readaloud.filters import MessageFacts
from bot.readaloud.reader import ReadAloud
from bot.readaloud.utterance import Names
from bot.speech.cache import AudioCache
from bot.speech.factory import SERVICE_LABEL, cache_namespace, make_speech_backend
from bot.speech.failover import Engine, FailoverSpeech
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


async def main(guilds: int, rate: float, seconds: float) -> None:
    body = clip()

    async def audio(_: Any) -> tuple[bytes, str]:
        return body, "audio/ogg"

    tmp = Path(tempfile.mkdtemp(prefix="bench-readaloud-"))
    async with SpeechEndpoint(api_key=KEY, audio=audio) as endpoint, aiohttp.ClientSession() as http:
        settings = load_settings({"DATA_DIR": str(tmp), "SPEECH_API_BASE_URL": endpoint.base_url,
                                  "SPEECH_API_KEY": KEY, "SPEECH_MODEL": "tts-1", "SPEECH_VOICES": "alloy"})
        store = await Store.open(f"sqlite:///{tmp / 'bench.db'}")
        backend = make_speech_backend(settings, http)
        cache = AudioCache(backend, namespace=cache_namespace(settings))  # memory tier only
        limits = VoiceLimits(idle_timeout=3600, alone_timeout=3600, max_queue=20, stall_timeout=10)
        sessions = VoiceSessions(cache, limits)
        played: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for guild_id in range(1, guilds + 1):
            voice = VoiceDouble(guild_id, played[guild_id])
            voice.session = sessions._sessions[guild_id] = VoiceSession(sessions, voice)  # type: ignore[arg-type]
            await store.update_guild_settings(guild_id, say_name="never")
        speech = FailoverSpeech(cache, [Engine("openai", SERVICE_LABEL, cache.namespace, backend)])
        speaking = SpeechService(speech, Policy(settings, store), UsageLedger(store), settings)
        service = ReadAloud(sessions, store, speaking, queue_limit=limits.max_queue)

        sent_at: dict[tuple[int, int], float] = {}
        requests = [0]
        lags: list[float] = []
        samples: list[tuple[float, float, float]] = []  # (t, rss MiB, cpu s)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def guild_traffic(guild_id: int) -> None:
            interval = 1 / rate
            for seq in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + seq * interval + guild_id * 0.001 - loop.time()))
                author = seq % AUTHORS + 1
                content = f"message {seq} from {author} in {guild_id}"
                facts = MessageFacts(channel_id=guild_id * 10, author_id=author, content=content,
                                     author_voice_channel_id=guild_id * 10)
                sent_at[(guild_id, seq)] = time.monotonic()
                await service.on_message(guild_id, guild_id * 1_000_000 + seq, facts, Names("A", None, "a"),
                                         lambda name, _mode, c=content: MessageInput(content=c, author_name=name))

        async def monitor() -> None:
            while True:
                before = loop.time()
                await asyncio.sleep(0.1)
                lags.append(loop.time() - before - 0.1)
                requests[0] += len(endpoint.requests)  # the double's own records are not the bot's memory
                endpoint.requests.clear()
                endpoint.served.clear()
                if not samples or loop.time() - start - samples[-1][0] >= 5:
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    samples.append((loop.time() - start, rss_mib(), usage.ru_utime + usage.ru_stime))

        watcher = asyncio.create_task(monitor())
        await asyncio.gather(*(guild_traffic(g) for g in range(1, guilds + 1)))
        sending_took = loop.time() - start
        for _ in range(600):  # drain: until nothing waits or plays
            await asyncio.sleep(0.1)
            busy = [g for g in range(1, guilds + 1) if (r := service.reader(g)) is not None and len(r.queue)]
            playing = [g for g in range(1, guilds + 1) if sessions._sessions[g].player.playing]
            if not busy and not playing:
                break
        watcher.cancel()
        dropped = sum(r.dropped for g in range(1, guilds + 1) if (r := service.reader(g)) is not None)
        requests[0] += len(endpoint.requests)
        await service.close()
        await speaking.ledger.close()
        await sessions.close()
        await cache.shutdown()
        await store.close()

    read = 0
    violations = 0
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
            delays.append(started - sent_at[(guild_id, seq)])
            read += 1
    total = len(sent_at)
    lost = total - read - dropped
    delays.sort()
    print(f"guilds={guilds} rate={rate}/s per guild seconds={seconds} (sending took {sending_took:.1f} s)")
    print(f"messages sent={total} read={read} dropped_by_policy={dropped} lost={lost} order_violations={violations}")
    print(f"speech requests={requests[0]} cache={cache.stats}")
    print(f"message → first packet: p50={statistics.median(delays) * 1000:.0f} ms "
          f"p95={delays[int(len(delays) * 0.95)] * 1000:.0f} ms max={delays[-1] * 1000:.0f} ms")
    print(f"event loop lag: p50={statistics.median(lags) * 1000:.1f} ms max={max(lags) * 1000:.0f} ms")
    print("t s | RSS MiB | CPU s")
    for t, rss, cpu in samples:
        print(f"{t:5.0f} | {rss:7.1f} | {cpu:6.1f}")


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    asyncio.run(main(int(args[0]) if args else 50, args[1] if len(args) > 1 else 10.0,
                     args[2] if len(args) > 2 else 60.0))
