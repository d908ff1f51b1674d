"""Soak: the real bot for minutes in many guilds, mixed /speak and read-aloud, with faults injected on a
schedule. Reports what was served, errors by kind, memory over time, and whether anything was lost.

Run: ``python bench/soak.py [--guilds 100] [--minutes 10] [--speak-rate 2] [--chat-rate 8] [--fault-every 20]
[--bot-env NAME=VALUE ...]``
(needs the ``test`` extra: the loopback Discord and speech endpoint live under ``tests/loopback``). Not a test:
it takes minutes and its figures go to docs/PERFORMANCE.md.

The bot is the product itself (``python -m bot run``, SQLite in a temporary DATA_DIR) in a child process; this
process is Discord (gateway, REST, interactions, voice websocket + UDP that decrypts every packet) and the
speech endpoint. The endpoint serves real piper speech of a few phrases (synthesized once, then reused
whatever the numbered text asked for), so the load is the bot's and not piper's.

Accounting:

* every ``/speak`` must get exactly one answer: a file, a voice confirmation, or a short ephemeral error;
  no answer within the drain time counts as **lost**;
* every chat message read aloud is numbered; it must reach the speech endpoint (**read**), or be dropped by
  a documented rule that the bot logs (full queue, budget or rate); anything else counts as **lost**.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.loopback.discord import DiscordEmulator  # noqa: E402
from tests.loopback.many_guilds import Place, add_guilds, commands_everywhere  # noqa: E402
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY  # noqa: E402
from tests.loopback.speech_server import Fault, SpeechEndpoint, local_speech  # noqa: E402
from tests.support.bot_process import BotProcess, log_problems  # noqa: E402

PHRASES = ["hello world", "good morning everyone", "open the door", "thank you for listening"]
NUMBERED = re.compile(r"\b(?:Soak|Chat) (\d+)\b")
DROP_LINES = ("read-aloud queue full", "a read-aloud message was dropped", "not synthesized")
#: The bot left voice (a fault ended the session) with messages still waiting: not read, by design.
STOPPED = re.compile(r"read-aloud stopped \(guild=\d+\): (\d+) waiting messages not read")


async def phrase_audio(body: dict[str, Any]) -> tuple[bytes, str]:
    """Real speech of the phrase the numbered text carries (synthesized once per phrase and format)."""
    text = body["input"]
    phrase = next((p for p in PHRASES if p in text.lower()), PHRASES[0])
    return await local_speech({**body, "input": phrase, "speed": 1.0})


@dataclass
class Faults:
    """The schedule: one fault every ``every`` seconds, in rotation; what was injected and when."""

    emu: DiscordEmulator
    endpoint: SpeechEndpoint
    places: list[Place]
    injected: collections.Counter[str] = field(default_factory=collections.Counter)

    def kinds(self) -> list[tuple[str, Any]]:
        speech = self.endpoint.inject
        voice = self.emu.voice
        return [
            ("speech 500 x3", lambda: speech(Fault(status=500, times=3))),
            ("speech 429 Retry-After 1 s x2", lambda: speech(Fault(status=429, headers={"Retry-After": "1"},
                                                                   message="Rate limit reached", times=2))),
            ("speech hangs x1", lambda: speech(Fault(hang=True))),
            ("speech cut mid-stream x2", lambda: speech(Fault(cut_after=3000, times=2))),
            ("speech slow first byte 2 s x2", lambda: speech(Fault(first_byte_delay=2.0, times=2))),
            ("voice socket closed 4015 (resumable)", lambda: self._voice(lambda g: voice.close_voice(g, 4015))),
            ("voice socket closed 4006 (session gone)", lambda: self._voice(lambda g: voice.close_voice(g, 4006))),
            ("voice UDP dropped 2 s", lambda: voice.drop_udp(2.0)),
        ]

    def _voice(self, action: Any) -> Any:
        guild = random.choice([p.guild for p in self.places if self.emu.voice_connected(p.guild)] or [None])
        return action(guild) if guild is not None else None

    async def run(self, every: float, until: float) -> None:
        kinds = self.kinds()
        index = 0
        while time.monotonic() + every < until:
            await asyncio.sleep(every)
            name, inject = kinds[index % len(kinds)]
            index += 1
            result = inject()
            if asyncio.iscoroutine(result):
                await result
            self.injected[name] += 1


@dataclass
class Sample:
    t: float
    rss_mib: float
    cpu_s: float
    speak_sent: int
    chat_sent: int
    requests: int
    packets: int


def process_stats(pid: int) -> tuple[float, float]:
    """(resident MiB, CPU seconds) of ``pid`` from /proc."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.emu = DiscordEmulator(token="soak-token")
        self.places = add_guilds(self.emu, args.guilds)
        self.endpoint = SpeechEndpoint(api_key=SPEECH_TEST_KEY, audio=phrase_audio)
        self.data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
        self.bot: BotProcess | None = None
        self.interactions: list[Any] = []
        self.chat_sent: dict[int, float] = {}  # number → when
        self.chat_guild: dict[int, int] = {}
        self.chat_not_in_voice: set[int] = set()  # sent while the bot was out of that voice channel
        self.rejoins = 0
        self.samples: list[Sample] = []
        self.packets = 0
        self.faults = Faults(self.emu, self.endpoint, self.places)

    async def start(self) -> None:
        await self.emu.start()
        await self.endpoint.start()
        env = {
            **self.emu.env(),
            "DEV_GUILD_ID": str(self.emu.guild.id),
            "DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "INFO",
            "SPEECH_API_BASE_URL": self.endpoint.base_url,
            "SPEECH_API_KEY": SPEECH_TEST_KEY,
            "SPEECH_TIMEOUT": "5",
            "SPEECH_FALLBACK": "none",  # the faults are the speech service's own: its errors, not the offline voice
            "VOICE_IDLE_TIMEOUT": "3600",
            **dict(item.split("=", 1) for item in self.args.bot_env),
        }
        self.bot = BotProcess(env, self.data_dir / "bot.log")
        await self.bot.start()
        await self.emu.wait_for(lambda: any(s.ready for s in self.emu.gateway.sessions.values()), 60, "READY")
        await self.emu.wait_commands(timeout=60, guild_id=self.emu.guild.id)
        commands_everywhere(self.emu)
        joins = [await self.emu.invoke("join", {}, user=self.emu.user, guild=p.guild, channel=p.text)
                 for p in self.places]
        replies = await asyncio.gather(*(i.wait_message(timeout=120) for i in joins))
        joined = sum("Joined" in r.content for r in replies)
        print(f"bot in {joined} of {len(self.places)} voice channels", flush=True)

    async def speak(self, number: int) -> None:
        place = random.choice(self.places)
        output = random.choice(["file", "voice", "voice", "both"])
        text = f"Soak {number}: {random.choice(PHRASES)}."
        self.interactions.append(await self.emu.invoke(
            "speak", {"text": text, "output": output}, user=self.emu.user, guild=place.guild, channel=place.text))

    async def chat(self, number: int) -> None:
        place = random.choice(self.places)
        self.chat_sent[number] = time.monotonic()
        self.chat_guild[number] = place.guild.id
        if not self.emu.voice_connected(place.guild):
            self.chat_not_in_voice.add(number)  # nobody to read it to: not read, by design
        await self.emu.chat.send(self.emu.user, place.voice, f"Chat {number}: {random.choice(PHRASES)}.")

    async def load(self, until: float) -> None:
        speak_n = chat_n = 0
        due_speak = due_chat = 0.0
        tick = 0.05
        while time.monotonic() < until:
            due_speak += self.args.speak_rate * tick
            due_chat += self.args.chat_rate * tick
            while due_speak >= 1:
                due_speak -= 1
                speak_n += 1
                await self.speak(speak_n)
            while due_chat >= 1:
                due_chat -= 1
                chat_n += 1
                await self.chat(chat_n)
            await asyncio.sleep(tick)

    def count_packets(self) -> None:
        """Count and forget what the voice server recorded (minutes of audio would fill memory)."""
        for place in self.places:
            for session in self.emu.voice.sessions(place.guild):
                self.packets += len(session.packets)
                session.packets.clear()

    async def sample(self, started: float, until: float) -> None:
        assert self.bot is not None and self.bot.process is not None
        while True:
            self.count_packets()
            rss, cpu = process_stats(self.bot.process.pid)
            row = Sample(time.monotonic() - started, rss, cpu, len(self.interactions), len(self.chat_sent),
                         len(self.endpoint.requests), self.packets)
            self.samples.append(row)
            print(f"  t={row.t:6.0f} s  RSS {row.rss_mib:6.1f} MiB  CPU {row.cpu_s:7.1f} s  /speak {row.speak_sent:6d}"
                  f"  chat {row.chat_sent:6d}  speech requests {row.requests:6d}  voice packets {row.packets:8d}",
                  flush=True)
            if time.monotonic() >= until:
                return
            await self.rejoin()
            await asyncio.sleep(min(self.args.sample_every, max(0.0, until - time.monotonic())))

    async def rejoin(self) -> None:
        """Like a user would: /join again where a fault ended the bot's voice session."""
        for place in self.places:
            if not self.emu.voice_connected(place.guild):
                self.rejoins += 1
                await self.emu.invoke("join", {}, user=self.emu.user, guild=place.guild, channel=place.text)

    async def drain(self, quiet: float = 10, limit: float = 120) -> None:
        """Until no new speech request for ``quiet`` seconds and every /speak has an answer (or ``limit``)."""
        deadline = time.monotonic() + limit
        last_count, last_change = len(self.endpoint.requests), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if len(self.endpoint.requests) != last_count:
                last_count, last_change = len(self.endpoint.requests), time.monotonic()
            answered = all(i.messages for i in self.interactions)
            if answered and time.monotonic() - last_change >= quiet:
                return

    async def stop(self) -> tuple[int | None, float]:
        assert self.bot is not None
        started = time.monotonic()
        try:
            code = await self.bot.stop(timeout=30)
        except AssertionError:
            code = None
        return code, time.monotonic() - started

    async def close(self) -> None:
        if self.bot is not None and self.bot.process is not None and self.bot.process.returncode is None:
            self.bot.process.send_signal(signal.SIGKILL)
            await self.bot.process.wait()
        await self.endpoint.close()
        await self.emu.close()

    def report(self, exit_code: int | None, stop_seconds: float, wall: float) -> dict[str, Any]:
        speak: collections.Counter[str] = collections.Counter()
        for interaction in self.interactions:
            if not interaction.messages:
                speak["LOST (no answer)"] += 1
                continue
            message, later = interaction.messages[0], interaction.messages[1:]
            if message.ephemeral:
                kind = "error: " + " ".join(message.content.split()[:7])
            elif message.attachments:
                kind = "ok: file" + (" + voice" if "<#" in message.content else "")
            else:
                kind = "ok: voice"
            if later and all(m.ephemeral for m in later) and not message.ephemeral:
                # queued for voice, then the stream broke while it played: the requester is told, by design
                kind += ", then while playing: " + " ".join(later[0].content.split()[:7])
            elif later:
                kind = "answered more than once"
            speak[kind] += 1
        requested = {int(m.group(1)) for r in self.endpoint.requests if isinstance(r.json, dict)
                     for m in [NUMBERED.search(str(r.json.get("input", "")))] if m and "Chat" in m.group(0)}
        log = self.bot.log if self.bot else ""
        drops = {line: log.count(line) for line in DROP_LINES}
        drops["waiting when the bot left voice"] = sum(int(n) for n in STOPPED.findall(log))
        chat_read = len(requested & set(self.chat_sent))
        not_in_voice = len(self.chat_not_in_voice - requested)
        chat_lost = len(self.chat_sent) - chat_read - sum(drops.values()) - not_in_voice
        result = {
            "guilds": len(self.places), "seconds": self.args.minutes * 60, "wall_s": round(wall),
            "speak": dict(speak), "speak_sent": len(self.interactions),
            "chat_sent": len(self.chat_sent), "chat_read": chat_read, "chat_dropped_by_rule": drops,
            "chat_not_read_bot_not_in_voice": not_in_voice, "voice_rejoins_after_faults": self.rejoins,
            "chat_lost": max(chat_lost, 0), "chat_unaccounted": chat_lost,
            "chat_unread_examples": [(n, self.chat_guild[n]) for n in
                                     sorted(set(self.chat_sent) - requested - self.chat_not_in_voice)][:10],
            "speech_requests": len(self.endpoint.requests), "voice_packets": self.packets,
            "voice_audio_s": round(self.packets * 0.02), "faults": dict(self.faults.injected),
            "emulator_failures": self.emu.failures[:20], "endpoint_failures": self.endpoint.failures[:20],
            "exit_code": exit_code, "stop_s": round(stop_seconds, 1),
            "log_problems": log_problems(log, (SPEECH_TEST_KEY, self.emu.token))[:5] if log else [],
            "samples": [s.__dict__ for s in self.samples],
        }
        print("\n" + json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
        return result


async def main(args: argparse.Namespace) -> None:
    soak = Soak(args)
    wall = time.monotonic()
    try:
        await soak.start()
        started = time.monotonic()
        until = started + args.minutes * 60
        await asyncio.gather(soak.load(until), soak.faults.run(args.fault_every, until),
                             soak.sample(started, until))
        print("load over; draining ...", flush=True)
        await soak.drain()
        soak.count_packets()
        rss, cpu = process_stats(soak.bot.process.pid)  # type: ignore[union-attr]
        soak.samples.append(Sample(time.monotonic() - started, rss, cpu, len(soak.interactions),
                                   len(soak.chat_sent), len(soak.endpoint.requests), soak.packets))
        code, stop_seconds = await soak.stop()
        result = soak.report(code, stop_seconds, time.monotonic() - wall)
        out = Path(args.output)
        out.write_text(json.dumps(result, indent=2))
        print(f"written to {out}; bot log {soak.data_dir / 'bot.log'}")
    finally:
        await soak.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--speak-rate", type=float, default=2.0, help="/speak per second, all guilds")
    parser.add_argument("--chat-rate", type=float, default=8.0, help="chat messages per second, all guilds")
    parser.add_argument("--fault-every", type=float, default=20.0, help="seconds between injected faults")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--output", default="soak-result.json")
    parser.add_argument("--bot-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra setting for the bot (repeatable), e.g. CACHE_MEMORY_MB=2")
    asyncio.run(main(parser.parse_args()))
