"""Voice playback end to end: trigger → first RTP packet, and CPU per stream with N concurrent guilds,
for the product's streamed path against the usual "download, then FFmpegOpusAudio" bot, in the same run.

Every call runs DAVE end-to-end encryption, as on Discord since 2026-03: the loopback's humans (one per guild)
are libdave group members, and a packet counts only if they could decrypt it. A third part measures DAVE itself:
a rejoin → the first frame a listener can decrypt, and the frames listeners lose when others join and leave
while the bot speaks, with the bot's key-switch hold on and off (``bot.voice.connection.HOLD_KEY_SWITCH``).

Run: ``python bench/bench_voice.py [--runs 50] [--guilds 1,10,50,100] [--first-byte-delay 0.15] [--dave-runs 20]``
(needs the ``test`` and ``bench`` extras: the loopback Discord and speech endpoint live under ``tests/``, the
baseline's ffmpeg binary comes from ``imageio-ffmpeg``; the product itself never uses ffmpeg).

Two processes, so CPU is attributed to the bot alone:

* this one, the load generator: ``tests.loopback`` Discord emulator (gateway, TLS voice websocket, UDP server
  that decrypts every RTP packet and stamps its arrival) and the loopback speech endpoint (real piper speech,
  served with ``first_byte_delay``, whose time to first byte is recorded per request);
* a child, the bot (``--bot``): a real ``discord.Client`` that joins every guild's voice channel through the
  product's ``VoiceSessions`` and, on each gateway MESSAGE_CREATE, plays the text one of three ways:

  - ``product``: ``session.enqueue(PlayItem(...))`` → ``GuildPlayer`` → ``OpenAISpeechClient`` streaming →
    ``opus_packet_batches`` → ``StreamedOpusSource`` (Ogg Opus 20 ms is passed through, wav is transcoded);
  - ``ffmpeg-copy``: POST, read the whole body, write a temp file,
    ``FFmpegOpusAudio(path, codec="copy")`` → ``vc.play`` (the usual bot with an Opus endpoint);
  - ``ffmpeg-encode``: same with ``codec=None`` (ffmpeg decodes and re-encodes: the usual bot).

Both processes use ``time.monotonic`` (the asyncio loop clock), so the emulator's UDP arrival stamps and the
dispatch time of the message are on one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SPEECH_KEY = "sk-bench-0123456789"
MODEL = "gpt-4o-mini-tts"
VOICE = "alloy"
LATENCY_TEXT = "The quick brown fox jumps over the lazy dog."
LOAD_TEXT = "Good morning everyone, the weather is nice today. Thank you for listening."
#: (label, how the bot plays it, response_format). The product rows first.
VARIANTS = [
    ("product, opus 20 ms (passthrough)", "product", "opus"),
    ("product, wav (transcode)", "product", "wav"),
    ("baseline, opus + ffmpeg copy", "ffmpeg-copy", "opus"),
    ("baseline, wav + ffmpeg encode", "ffmpeg-encode", "wav"),
]
PLAY_FOR = 0.2  # latency runs: the bot stops playback this long after it started (only the start matters)
FRAME = 0.02
SAMPLE_RATE = 48_000
OPUS_SILENCE = b"\xf8\xff\xfe"
OGG_HEADERS = (b"OpusHead", b"OpusTags")
#: The load part also plays pre-parsed packets from memory: discord.py's own per-packet cost (player thread,
#: encryption, UDP send), which every path pays; what a path costs above it is its source's cost.
FLOOR = ("floor: discord.py player, packets in memory", "floor", "opus")


def is_audio(opus: bytes) -> bool:
    """A frame that is sound: not the silence frame, not an Ogg header discord.py sent as a frame."""
    return opus != OPUS_SILENCE and not opus.startswith(OGG_HEADERS)


def heard(packet: Any) -> bool:
    """A packet the humans in the call hear: sound they could decrypt (DAVE), not silence or headers."""
    return packet.heard and is_audio(packet.opus)


# =========================================================================================================
# The bot process
# =========================================================================================================


def bot_main() -> None:
    if path := os.environ.get("BENCH_PROFILE"):  # cProfile of the event loop thread, written at exit
        import cProfile

        cProfile.runctx("asyncio.run(_bot())", globals(), {"_bot": _bot, "asyncio": asyncio}, path)
        return
    asyncio.run(_bot())


def _emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def _cpu() -> dict[str, Any]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime, "t": time.monotonic(),
            "threads": _thread_cpu()}


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far per kind of live thread (event loop, voice sender, worker pool, ...), from /proc."""
    import re
    import threading

    names = {thread.native_id: re.sub(r"[_:-]?(0x[0-9a-f]+|\d+)$", "", thread.name)
             for thread in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
                name = names.get(int(tid), "other")
                totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


async def _bot() -> None:
    import aiohttp
    import discord
    import imageio_ffmpeg
    import yarl

    from bot.audio.formats import AudioFormat
    from bot.speech.client import OpenAISpeechClient
    from bot.speech.models import SpeechRequest
    from bot.voice.player import PlayItem
    from bot.voice.sessions import VoiceLimits, VoiceSessions

    env = os.environ
    if level := env.get("BENCH_BOT_LOG"):  # e.g. DEBUG: discord.py's voice flow, into the bot log file
        import logging

        logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    discord.http.Route.BASE = env["BENCH_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(env["BENCH_GATEWAY"])
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    tmp = tempfile.TemporaryDirectory(prefix="bench-voice-")
    import ssl

    # limit=0 as discord.py's own default: one connection per voice channel, beyond aiohttp's 100
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=env["BENCH_CA"]), limit=0)
    client = discord.Client(intents=discord.Intents.default(), connector=connector, guild_ready_timeout=0.1)
    http = aiohttp.ClientSession()
    speech = OpenAISpeechClient(http, base_url=env["BENCH_SPEECH"], api_key=SPEECH_KEY, model=MODEL, voices=[VOICE])
    sessions = VoiceSessions(speech, VoiceLimits(idle_timeout=3600, alone_timeout=3600, max_queue=10,
                                                 stall_timeout=30))
    tasks: set[asyncio.Task[None]] = set()
    counter = iter(range(10**9))

    async def join_all() -> None:
        semaphore = asyncio.Semaphore(4)

        async def join(guild: discord.Guild) -> None:
            async with semaphore:
                for attempt in range(3):  # the loopback has 100 handshakes to answer on a shared 2-core box
                    try:
                        await sessions.join(guild.voice_channels[0])
                        return
                    except Exception as exc:  # noqa: BLE001 - retried; the last failure ends the run
                        _emit("warning", error=f"join {guild.id} attempt {attempt + 1}: {exc!r}")
                raise RuntimeError(f"could not join guild {guild.id}")

        await asyncio.gather(*(join(g) for g in client.guilds))
        _emit("joined", guilds=len(sessions))

    async def product(guild: discord.Guild, fmt: str, text: str, stop_after: float | None) -> None:
        session = sessions.get(guild.id)
        assert session is not None
        request = SpeechRequest(text=text, voice=VOICE, format=AudioFormat(fmt))
        session.enqueue(PlayItem(request, requester_id=0))
        if stop_after is not None:
            vc = session.voice_client
            while not vc.is_playing():
                await asyncio.sleep(0.005)
            await asyncio.sleep(stop_after)
            session.player.skip()

    async def baseline(guild: discord.Guild, fmt: str, text: str, copy: bool, stop_after: float | None) -> None:
        # What most bots do: download the whole file, save it, hand the path to discord.py's ffmpeg source.
        session = sessions.get(guild.id)
        assert session is not None
        vc = session.voice_client
        body = speech.request_body(SpeechRequest(text=text, voice=VOICE, format=AudioFormat(fmt)))
        async with http.post(env["BENCH_SPEECH"] + "/audio/speech", json=body,
                             headers={"Authorization": f"Bearer {SPEECH_KEY}"}) as response:
            response.raise_for_status()
            data = await response.read()
        path = Path(tmp.name, f"{next(counter)}.{fmt}")
        path.write_bytes(data)
        source = discord.FFmpegOpusAudio(str(path), executable=ffmpeg, codec="copy" if copy else None)
        vc.play(source, after=lambda error: path.unlink(missing_ok=True))
        if stop_after is not None:
            await asyncio.sleep(stop_after)
            vc.stop()

    class MemorySource(discord.AudioSource):
        def __init__(self, packets: list[bytes]) -> None:
            self._packets = iter(packets)

        def read(self) -> bytes:
            return next(self._packets, b"")

        def is_opus(self) -> bool:
            return True

    async def floor(guild: discord.Guild, text: str) -> None:
        # No decoding at all: the body's Opus packets, parsed up front, read from a list.
        import io

        from discord.oggparse import OggStream

        session = sessions.get(guild.id)
        assert session is not None
        body = speech.request_body(SpeechRequest(text=text, voice=VOICE, format=AudioFormat.OPUS))
        async with http.post(env["BENCH_SPEECH"] + "/audio/speech", json=body,
                             headers={"Authorization": f"Bearer {SPEECH_KEY}"}) as response:
            data = await response.read()
        packets = [p for p in OggStream(io.BytesIO(data)).iter_packets() if not p.startswith(OGG_HEADERS)]
        session.voice_client.play(MemorySource(packets))

    async def handle(command: dict[str, Any], guild: discord.Guild | None) -> None:
        try:
            match command["cmd"]:
                case "join":
                    await join_all()
                case "cpu":
                    _emit("cpu", **_cpu())
                case "hold":
                    import bot.voice.connection

                    bot.voice.connection.HOLD_KEY_SWITCH = bool(command["on"])
                    _emit("hold", on=bot.voice.connection.HOLD_KEY_SWITCH)
                case "rejoin":
                    assert guild is not None
                    channel = guild.voice_channels[0]
                    await sessions.leave(guild.id)
                    await sessions.join(channel)
                    _emit("rejoined", t=time.monotonic())
                    await product(guild, "opus", command["text"], None)
                case "speak":
                    assert guild is not None
                    mode, fmt, text, stop = command["mode"], command["format"], command["text"], command.get("stop")
                    if mode == "product":
                        await product(guild, fmt, text, stop)
                    elif mode == "floor":
                        await floor(guild, text)
                    else:
                        await baseline(guild, fmt, text, mode == "ffmpeg-copy", stop)
                case "quit":
                    _emit("bye")
                    await sessions.close()
                    await client.close()
        except Exception as exc:  # noqa: BLE001 - a broken run must be visible, not a silent missing packet
            _emit("error", error=repr(exc))

    @client.event
    async def on_ready() -> None:
        _emit("ready", guilds=len(client.guilds))

    @client.event
    async def on_message(message: discord.Message) -> None:
        if not message.content.startswith("{"):
            return
        task = asyncio.create_task(handle(json.loads(message.content), message.guild))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        await client.start(env["BENCH_TOKEN"])
    finally:
        await http.close()
        tmp.cleanup()


# =========================================================================================================
# The load generator: emulator, speech endpoint, measurement
# =========================================================================================================


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class BotProcess:
    proc: asyncio.subprocess.Process
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def pump(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event["event"] in ("error", "warning"):
                print(f"  bot {event['event']}: {event['error']}", file=sys.stderr)
            await self.events.put(event)

    async def expect(self, name: str, timeout: float = 60) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event["event"] == name:
                    return event


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from tests.loopback.discord import DiscordEmulator
        from tests.loopback.many_guilds import add_guilds
        from tests.loopback.speech_server import SpeechEndpoint

        class TimedEndpoint(SpeechEndpoint):
            """The loopback endpoint, also recording when each request arrived and its first byte left."""

            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.arrived: list[float] = []
                self.first_byte: list[float] = []

            async def _handle(self, request: Any) -> Any:
                self.arrived.append(time.monotonic())
                return await super()._handle(request)

            async def _stream(self, request: Any, *args: Any) -> Any:
                self.first_byte.append(time.monotonic())  # response.prepare() sends the status line next
                return await super()._stream(request, *args)

        self.args = args
        self.emu = DiscordEmulator(token="bench-token")
        if args.no_dave:  # calls without end-to-end encryption (as before 2026-03, or stage channels)
            self.emu.voice.server.dave_version = 0
        self.endpoint = TimedEndpoint(api_key=SPEECH_KEY, chunks=args.chunks)
        places = add_guilds(self.emu, max(args.guilds, default=1))
        self.text_channels = {place.guild.id: place.text for place in places}
        self.bot: BotProcess | None = None
        self.idle_rate = 0.0  # CPU seconds per second while nothing plays (measure_idle)
        # the bot process's stderr for the whole run, read back by name afterwards
        self.log = tempfile.NamedTemporaryFile(prefix="bench-voice-bot-", suffix=".log", delete=False)  # noqa: SIM115

    async def start(self) -> None:
        await self.emu.start()
        await self.endpoint.start()
        env = {**os.environ, "BENCH_API_BASE": self.emu.api_base, "BENCH_GATEWAY": self.emu.gateway_url,
               "BENCH_CA": self.emu.ca_pem_path, "BENCH_TOKEN": self.emu.token,
               "BENCH_SPEECH": self.endpoint.base_url, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--bot", stdout=asyncio.subprocess.PIPE, stderr=self.log, env=env)
        self.bot = BotProcess(proc)
        self._pump = asyncio.create_task(self.bot.pump())
        await self.bot.expect("ready", 60)
        await self.command(self.emu.guild, {"cmd": "join"})
        joined = await self.bot.expect("joined", 240)
        print(f"bot in {joined['guilds']} voice channels", flush=True)

    async def close(self) -> None:
        if self.bot is not None and self.bot.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.command(self.emu.guild, {"cmd": "quit"})
                await asyncio.wait_for(self.bot.proc.wait(), 10)
            if self.bot.proc.returncode is None:
                self.bot.proc.kill()
                await self.bot.proc.wait()
        await self.endpoint.close()
        await self.emu.close()

    async def command(self, guild: Any, command: dict[str, Any]) -> float:
        """Dispatch MESSAGE_CREATE carrying ``command`` in ``guild``; returns the dispatch time."""
        from tests.loopback.discord_messages import Message

        channel = self.text_channels[guild.id]
        message = Message(id=self.emu.snowflake(), channel_id=channel.id, guild_id=guild.id, author=self.emu.user,
                          content=json.dumps(command))
        started = time.monotonic()
        await self.emu.dispatch("MESSAGE_CREATE", message.to_payload())
        return started

    async def cpu(self) -> dict[str, float]:
        assert self.bot is not None
        await self.command(self.emu.guild, {"cmd": "cpu"})
        return await self.bot.expect("cpu", 10)

    async def quiet(self, sessions: list[Any], quiet: float = 0.15, timeout: float = 30) -> None:
        """Until no voice packet arrived in any of ``sessions`` for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = max((s.packets[-1].arrival for s in sessions if s.packets), default=0.0)
            if time.monotonic() - last >= quiet:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("voice never went quiet")

    async def measure_idle(self, seconds: float) -> None:
        """What the bot costs doing nothing, in the voice channels it joined (heartbeats of the gateway and of
        every voice connection), so that the CPU the streams add can be told apart from it."""
        if seconds <= 0:
            return
        await asyncio.sleep(1.0)  # the joins settle
        start = await self.cpu()
        await asyncio.sleep(seconds)
        end = await self.cpu()
        self.idle_rate = (end["self"] - start["self"]) / (end["t"] - start["t"])
        threads = {name: 1000 * (spent - start["threads"].get(name, 0.0)) / (end["t"] - start["t"])
                   for name, spent in end["threads"].items()}
        busiest = sorted(threads.items(), key=lambda item: -item[1])
        print(f"idle, in {len(self.emu.guilds)} voice channels: {1000 * self.idle_rate:.2f} CPU ms per second over "
              f"{seconds:.0f} s (" + ", ".join(f"{name} {ms:.2f}" for name, ms in busiest if ms >= 0.01) + ")",
              flush=True)

    # -- (1) trigger → first RTP packet ------------------------------------------------------------------

    async def latency(self, chunk_delay: float) -> dict[str, dict[str, list[float]]]:
        from tests.loopback.speech_server import Fault

        guild = self.emu.guild
        session = self.emu.voice_session(guild)
        results: dict[str, dict[str, list[float]]] = {label: {"total": [], "ttfb": [], "overhead": []}
                                                        for label, _, _ in VARIANTS}
        warmup = 3
        for run in range(warmup + self.args.runs):
            for label, mode, fmt in VARIANTS:  # interleaved: drift hits every variant alike
                self.endpoint.inject(Fault(first_byte_delay=self.args.first_byte_delay, chunk_delay=chunk_delay))
                index, requests = len(session.packets), len(self.endpoint.arrived)
                started = await self.command(guild, {"cmd": "speak", "mode": mode, "format": fmt,
                                                     "text": LATENCY_TEXT, "stop": PLAY_FOR})
                deadline = started + 10
                first = None
                while first is None and time.monotonic() < deadline:
                    first = next((p.arrival for p in session.packets[index:] if heard(p)), None)
                    if first is None:
                        await asyncio.sleep(0.001)
                if first is None:
                    raise TimeoutError(f"{label}: no audio within 10 s")
                await self.quiet([session])
                assert len(self.endpoint.arrived) == requests + 1, "one speech request per run"
                ttfb = self.endpoint.first_byte[requests] - self.endpoint.arrived[requests]
                if run >= warmup:
                    results[label]["total"].append(first - started)
                    results[label]["ttfb"].append(ttfb)
                    results[label]["overhead"].append(first - started - ttfb)
        return results

    # -- (2) N concurrent guilds -------------------------------------------------------------------------

    async def load(self, n: int, mode: str, fmt: str) -> dict[str, float]:
        from tests.loopback.speech_server import Fault

        guilds = self.emu.guilds[:n]
        sessions = [self.emu.voice_session(g) for g in guilds]
        await self.quiet(sessions)
        marks = [len(s.packets) for s in sessions]
        self.endpoint.inject(Fault(first_byte_delay=self.args.first_byte_delay, times=n))
        before = await self.cpu()
        lags: list[float] = []  # this process's own event loop lag: its arrival stamps are late by as much
        watch = asyncio.create_task(self.loop_lag(lags))
        for guild in guilds:
            await self.command(guild, {"cmd": "speak", "mode": mode, "format": fmt, "text": LOAD_TEXT})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every stream has played and gone quiet
            await asyncio.sleep(0.1)
            if all(any(heard(p) for p in s.packets[m:]) for s, m in zip(sessions, marks, strict=True)):
                break
        await self.quiet(sessions, quiet=0.3, timeout=120)
        watch.cancel()
        after = await self.cpu()
        audio_seconds, lateness, silences = 0.0, [], 0
        steady: list[float] = []  # lateness from 0.5 s into each stream on
        for session, mark in zip(sessions, marks, strict=True):
            packets = session.packets[mark:]
            sent = [i for i, p in enumerate(packets) if not p.is_silence]
            if not sent:
                raise RuntimeError(f"guild {session.guild_id}: nothing played")
            played = packets[sent[0] : sent[-1] + 1]
            audio_seconds += sum(heard(p) for p in played) * FRAME
            silences += sum(p.is_silence for p in played)  # silence inserted mid-stream (starved)
            # Lateness against the stream's ideal 20 ms grid (RTP timestamps), anchored on its best packet.
            # The first packet is left out: discord.py's AudioPlayer sends packet 2 at start + 40 ms (it adds
            # DELAY to an already absolute deadline), so packet 1 is always 20 ms "early" on the grid.
            ts0 = played[0].timestamp
            offsets = [p.arrival - ((p.timestamp - ts0) % 2**32) / SAMPLE_RATE for p in played[1:]]
            anchor = min(offsets)
            lateness.extend(o - anchor for o in offsets)
            steady.extend(o - anchor for o in offsets[25:])
        cpu_self, cpu_children = after["self"] - before["self"], after["children"] - before["children"]
        threads = {name: 1000 * (spent - before["threads"].get(name, 0.0)) / audio_seconds
                   for name, spent in after["threads"].items()}
        wall = after["t"] - before["t"]
        return {"n": n, "audio_s": audio_seconds, "wall_s": wall,
                "cpu_s": cpu_self + cpu_children, "cpu_children_s": cpu_children,
                "cpu_ms_per_audio_s": 1000 * (cpu_self + cpu_children) / audio_seconds,
                "added_ms_per_audio_s": 1000 * (cpu_self + cpu_children - self.idle_rate * wall) / audio_seconds,
                "late_p50_ms": 1000 * percentile(lateness, 50), "late_p99_ms": 1000 * percentile(lateness, 99),
                "late_max_ms": 1000 * max(lateness), "inserted_silence": silences,
                "steady_p99_ms": 1000 * percentile(steady, 99), "generator_lag_max_ms": 1000 * max(lags, default=0),
                "threads_ms_per_audio_s": threads}

    # -- (3) DAVE ---------------------------------------------------------------------------------------------

    async def rejoin(self, runs: int) -> dict[str, list[float]]:
        """The bot leaves, joins again and at once speaks (the endpoint answers without delay): how long until the
        first frame a human in the call can decrypt, and how many frames before it nobody could."""
        guild = self.emu.guild
        result: dict[str, list[float]] = {"join": [], "first_heard": [], "lost": []}
        for run in range(runs + 1):
            before = len(self.emu.voice.sessions(guild))
            started = await self.command(guild, {"cmd": "rejoin", "text": LATENCY_TEXT})
            joined = (await self.bot.expect("rejoined", 30))["t"]  # type: ignore[union-attr]
            await self.emu.wait_for(lambda before=before: len(self.emu.voice.sessions(guild)) > before, 10,
                                    "the new session")
            session = self.emu.voice_session(guild)
            deadline = time.monotonic() + 15
            while not any(heard(p) for p in session.packets) and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            first = next((p for p in session.packets if heard(p)), None)
            if first is None:
                raise TimeoutError("no frame heard after a rejoin")
            await self.quiet([session])
            if run:  # the first one warms the endpoint's cache of this text
                result["join"].append(joined - started)
                result["first_heard"].append(first.arrival - joined)
                result["lost"].append(sum(1 for p in session.packets if not p.heard and is_audio(p.payload)))
        return result

    async def churn(self, transitions: int, hold: bool) -> dict[str, float]:
        """Listeners join and leave while the bot speaks: frames the listeners in the group could not decrypt."""
        await self.command(self.emu.guild, {"cmd": "hold", "on": hold})
        await self.bot.expect("hold", 10)  # type: ignore[union-attr]
        guild = self.emu.guild
        channel = guild.channel_named("Voice")
        session = self.emu.voice_session(guild)
        mark = len(session.packets)
        text = " ".join([LOAD_TEXT] * 6)
        await self.command(guild, {"cmd": "speak", "mode": "product", "format": "opus", "text": text})
        await self.emu.wait_for(lambda: any(heard(p) for p in session.packets[mark:]), 30, "the item")
        listeners_before = self._lost_in_group(channel.id)
        executed_before = self._executions(channel.id)
        for n in range(transitions):
            user = self.emu.owner if n % 2 == 0 else self.emu.other_user
            await self.emu.voice.move_member(user, channel)
            await asyncio.sleep(0.6)
            await self.emu.voice.move_member(user, None)
            await asyncio.sleep(0.6)
        await self.quiet([session], quiet=0.3, timeout=60)
        lost = self._lost_in_group(channel.id) - listeners_before
        executed = self._executions(channel.id) - executed_before
        return {"transitions": executed, "lost": lost, "per_transition": lost / max(executed, 1),
                "unheard_in_group": len([p for p in session.packets[mark:] if p in session.unheard_frames()])}

    def _lost_in_group(self, channel_id: int) -> int:
        server = self.emu.voice.server
        everyone = [*server.listeners(channel_id), *(li for li in server.departed if li.call.channel_id == channel_id)]
        return sum(h.undecryptable for li in everyone for h in li.heard.values())

    def _executions(self, channel_id: int) -> int:
        return sum(1 for event, *_ in self.emu.voice.server.calls[channel_id].history if event == "execute")

    @staticmethod
    async def loop_lag(lags: list[float]) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(0.001)
            lags.append(time.monotonic() - asked - 0.001)


async def orchestrate(args: argparse.Namespace) -> None:
    bench = Bench(args)
    wall = time.monotonic()
    try:
        async with asyncio.timeout(args.timeout):
            await bench.start()
            print("warming the speech cache (piper) ...", flush=True)
            for text in (LATENCY_TEXT, LOAD_TEXT):
                for fmt in ("opus", "wav"):
                    from tests.loopback.speech_server import local_speech

                    await local_speech({"model": MODEL, "input": text, "voice": VOICE, "response_format": fmt})
            if args.guilds:
                await bench.measure_idle(args.idle)
            for chunk_delay in args.chunk_delays if args.runs else []:
                report_latency(await bench.latency(chunk_delay), args, chunk_delay)
            if args.dave_runs:
                delay, bench.args.first_byte_delay = bench.args.first_byte_delay, 0.0
                report_rejoin(await bench.rejoin(args.dave_runs))
                bench.args.first_byte_delay = delay
                report_churn([await bench.churn(args.dave_runs, hold) for hold in (True, False)])
            rows = []
            for n in args.guilds:
                for label, mode, fmt in [*VARIANTS, FLOOR]:
                    if args.only and not any(word in label for word in args.only):
                        continue
                    for _ in range(args.repeat):
                        row = await bench.load(n, mode, fmt)
                    row["label"] = label
                    rows.append(row)
                    print(f"  N={n:<4}{label:<36}{row['cpu_ms_per_audio_s']:>8.2f} CPU ms/s "
                          f"late p99 {row['late_p99_ms']:.1f} ms", flush=True)
            if rows:
                report_load(rows)
    finally:
        await bench.close()
        if bench.emu.voice.ignored_joins:
            print("voice joins Discord ignored:", bench.emu.voice.ignored_joins[:5])
        failures = bench.emu.failures + bench.endpoint.failures
        headers = [f for f in failures if "an Ogg Opus" in f]
        if headers:  # discord.py's FFmpegOpusAudio (baseline, codec="copy") sends OpusHead and OpusTags as frames
            print(f"baseline: {len(headers)} Ogg header packets sent as audio frames (discord.py FFmpegOpusAudio)")
        if others := [f for f in failures if f not in headers]:
            print("emulator/endpoint failures:", *others[:10], sep="\n  ")
        print(f"bot log: {bench.log.name}; total {time.monotonic() - wall:.0f} s")


def report_latency(results: dict[str, dict[str, list[float]]], args: argparse.Namespace, chunk_delay: float) -> None:
    print(f"\n(1) message → first RTP audio packet, {args.runs} runs each, endpoint first_byte_delay "
          f"{1000 * args.first_byte_delay:.0f} ms, body in {args.chunks} pieces {1000 * chunk_delay:.0f} ms apart (ms)")
    print(f"{'path':<36}{'total p50':>10}{'TTFB p50':>10}{'over p50':>10}{'over p95':>10}")
    for label, r in results.items():
        print(f"{label:<36}{1000 * percentile(r['total'], 50):>10.1f}{1000 * percentile(r['ttfb'], 50):>10.1f}"
              f"{1000 * percentile(r['overhead'], 50):>10.1f}{1000 * percentile(r['overhead'], 95):>10.1f}")
    labels = [label for label, _, _ in VARIANTS]
    for product, baseline in ((labels[0], labels[2]), (labels[1], labels[3]), (labels[0], labels[3])):
        p, b = (percentile(results[x]["overhead"], 50) for x in (product, baseline))
        print(f"  overhead p50 ratio  {baseline} / {product}: {b / p:.1f}x")


def report_rejoin(result: dict[str, list[float]]) -> None:
    print(f"\n(3a) DAVE: the bot leaves, joins again and speaks at once; {len(result['join'])} runs (ms)")
    print(f"  command → joined (discord.py's voice handshake): p50 {1000 * percentile(result['join'], 50):.1f}, "
          f"p95 {1000 * percentile(result['join'], 95):.1f}")
    print(f"  joined → first frame a listener decrypts: p50 {1000 * percentile(result['first_heard'], 50):.1f}, "
          f"p95 {1000 * percentile(result['first_heard'], 95):.1f}")
    print(f"  frames nobody could decrypt before it: total {int(sum(result['lost']))} (max {int(max(result['lost']))})")


def report_churn(rows: list[dict[str, float]]) -> None:
    print("\n(3b) DAVE: listeners join and leave while the bot speaks: frames the listeners in the group lost")
    for hold, row in zip((True, False), rows, strict=True):
        print(f"  key switch held until the transition executes: {'yes' if hold else 'no (davey: at commit)':<24}"
              f"{row['transitions']:>4.0f} transitions, {row['lost']:>4.0f} frames lost, "
              f"{row['per_transition']:.2f} per transition")


def report_load(rows: list[dict[str, Any]]) -> None:
    print("\n(2) N concurrent guilds, one item each: bot CPU (process + ffmpeg children) per second of audio;"
          "\n    'added': the same less what the bot spends doing nothing (its idle CPU per second, measured first,"
          "\n    times the window), i.e. the CPU the streams themselves cost")
    print(f"{'N':>4}  {'path':<36}{'audio s':>8}{'wall s':>8}{'CPU s':>8}{'ffmpeg s':>9}{'CPU ms/s':>10}"
          f"{'added':>7}{'late p50':>9}{'p99':>7}{'max':>7}{'gaps':>6}{'p99>0.5s':>9}{'gen lag':>8}")
    for row in rows:
        print(f"{row['n']:>4}  {row['label']:<36}{row['audio_s']:>8.1f}{row['wall_s']:>8.1f}{row['cpu_s']:>8.2f}"
              f"{row['cpu_children_s']:>9.2f}{row['cpu_ms_per_audio_s']:>10.2f}"
              f"{row['added_ms_per_audio_s']:>7.2f}{row['late_p50_ms']:>9.1f}"
              f"{row['late_p99_ms']:>7.1f}{row['late_max_ms']:>7.1f}{row['inserted_silence']:>6}"
              f"{row['steady_p99_ms']:>9.1f}{row['generator_lag_max_ms']:>8.1f}")
        busiest = sorted(row["threads_ms_per_audio_s"].items(), key=lambda item: -item[1])
        print("        by thread (ms/s): " + ", ".join(f"{name} {ms:.2f}" for name, ms in busiest if ms >= 0.01))
    by = {(r["n"], r["label"]): r for r in rows}
    labels = [label for label, _, _ in VARIANTS]
    if any((n, label) not in by for n in {r["n"] for r in rows} for label in labels):
        return  # --only: no ratios
    for n in sorted({r["n"] for r in rows}):
        product_opus, product_wav, baseline_opus, baseline_wav = (by[(n, label)] for label in labels)

        def ratio(key: str, baseline: dict[str, Any], product: dict[str, Any]) -> str:
            return f"{baseline[key] / product[key]:.1f}x" if product[key] > 0 else "n/a"

        print(f"  N={n}: CPU ratio baseline/product: opus {ratio('cpu_ms_per_audio_s', baseline_opus, product_opus)},"
              f" wav {ratio('cpu_ms_per_audio_s', baseline_wav, product_wav)}; added CPU: opus "
              f"{ratio('added_ms_per_audio_s', baseline_opus, product_opus)}, "
              f"wav {ratio('added_ms_per_audio_s', baseline_wav, product_wav)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=50, help="latency runs per variant (after 3 warm-ups)")
    parser.add_argument("--guilds", default="1,10,50,100", help="concurrent guild counts for the CPU part")
    parser.add_argument("--first-byte-delay", type=float, default=0.15, help="endpoint TTFB in seconds")
    parser.add_argument("--chunks", type=int, default=16, help="pieces the endpoint sends each body in")
    parser.add_argument("--chunk-delays", default="0,0.03",
                        help="latency scenarios: seconds between body pieces (0: whole body at once)")
    parser.add_argument("--timeout", type=float, default=540, help="give up after this many seconds")
    parser.add_argument("--only", default="", help="load part: only paths whose label contains one of these "
                        "comma-separated words (e.g. 'passthrough,floor'); ratios need all paths")
    parser.add_argument("--idle", type=float, default=15, help="load part: seconds of idling measured first "
                        "(a voice connection heartbeats every 13.75 s)")
    parser.add_argument("--repeat", type=int, default=1, help="load part: rounds per N and path (for profiling)")
    parser.add_argument("--no-dave", action="store_true", help="run every call without DAVE (for comparison)")
    parser.add_argument("--dave-runs", type=int, default=20, help="DAVE part: rejoins, and listener joins and "
                        "leaves per churn run (0: skip)")
    args = parser.parse_args()
    if args.bot:
        bot_main()
        return
    args.guilds = [int(n) for n in args.guilds.split(",") if n]
    args.chunk_delays = [float(d) for d in args.chunk_delays.split(",") if d]
    args.only = [word for word in args.only.split(",") if word]
    asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
