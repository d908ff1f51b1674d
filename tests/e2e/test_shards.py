"""Sharding end to end: real bot processes, each running some shards, against the strict loopback gateway.

Two processes (shard 0 and shard 1 of 2) share one PostgreSQL database and have a speech endpoint each, so
every synthesis shows which process made it. The loopback gateway tells each session only about its own
shard's guilds and fails the test if a process asks about another's (op 4, op 8).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_gateway import GatewaySession, shard_of
from tests.loopback.discord_messages import Message
from tests.loopback.discord_state import Guild, User
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.bot_process import BotProcess, log_problems, running_bot
from tests.support.metrics import assert_gateway_latency_measured, free_port, sample

LISTENING = 2  # Discord's activity type


class Shard:
    """One bot process of the fleet, with its own speech endpoint and metrics port."""

    def __init__(self, emu: DiscordEmulator, shard_id: int, data_dir: Path, database_url: str) -> None:
        self.emu = emu
        self.shard_id = shard_id
        self.data_dir = data_dir
        self.database_url = database_url
        self.endpoint = SpeechEndpoint(api_key=SPEECH_TEST_KEY)
        self.metrics_port = free_port()
        self.process: BotProcess | None = None

    def env(self) -> dict[str, str]:
        return {
            "SHARD_COUNT": "2",
            "SHARD_IDS": str(self.shard_id),
            "DATABASE_URL": self.database_url,
            "DEV_GUILD_ID": "",  # global commands: members of every guild can use them
            "SPEECH_API_BASE_URL": self.endpoint.base_url,
            "SPEECH_API_KEY": SPEECH_TEST_KEY,
            "SPEECH_BACKEND": "openai",
            "METRICS_PORT": str(self.metrics_port),
        }

    @asynccontextmanager
    async def running(self) -> AsyncIterator[BotProcess]:
        self.data_dir.mkdir(exist_ok=True)
        async with running_bot(self.emu, self.data_dir, **self.env()) as process:
            self.process = process
            yield process

    def session(self) -> GatewaySession:
        """This process's (latest) gateway session."""
        return [s for s in self.emu.sessions if s.shard == [self.shard_id, 2]][-1]

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.metrics_port}{path}") as r:
            return r.status, await r.text()


async def speak(emu: DiscordEmulator, guild: Guild, user: User, text: str, **options: Any) -> Message:
    """``/speak`` in ``guild``; the message the bot answered with must carry the audio."""
    interaction = await emu.invoke("speak", {"text": text, **options}, user=user, guild=guild,
                                   channel=guild.channel_named("general"))
    message = await interaction.wait_message(timeout=30)
    assert message.attachments and not message.ephemeral, message.content
    return message


async def ephemeral(emu: DiscordEmulator, command: str, guild: Guild, user: User, **options: Any) -> str:
    interaction = await emu.invoke(command, options, user=user, guild=guild, channel=guild.channel_named("general"))
    response = await interaction.wait_response(timeout=10)
    assert response.ephemeral, response
    return response.data.get("content") or ""


async def test_two_processes_split_the_guilds_by_shard_and_share_one_postgres_database(
    discord_emulator: DiscordEmulator, tmp_path: Path, postgres_database_url: str
) -> None:
    emu = discord_emulator
    guild_a, guild_b = emu.add_guild("On shard 0", shard=(0, 2)), emu.add_guild("On shard 1", shard=(1, 2))
    alice, bob = emu.user, emu.other_user
    shards = [Shard(emu, i, tmp_path / f"shard{i}", postgres_database_url) for i in (0, 1)]
    async with AsyncExitStack() as stack:
        for shard in shards:
            await stack.enter_async_context(shard.endpoint)
        p0 = await stack.enter_async_context(shards[0].running())
        p1 = await stack.enter_async_context(shards[1].running())
        s0, s1 = shards[0].session(), shards[1].session()

        # each process identified as its shard, with the bot's presence, and knows only its shard's guilds
        for session in (s0, s1):
            assert session.presence is not None and session.presence["status"] == "online"
            assert [(a["type"], a["name"]) for a in session.activities] == [(LISTENING, "/speak")]
        assert "synced" in p0.log and "synced by the process that runs shard 0" in p1.log
        assert len(emu.commands[None]) > 0 and list(emu.commands) == [None]  # one global sync, by shard 0

        # /speak in each guild is answered by its own process: the other one's endpoint hears nothing
        await speak(emu, guild_a, alice, "hello from shard zero")
        await speak(emu, guild_b, alice, "hello from shard one")
        assert [r.json["input"] for r in shards[0].endpoint.requests] == ["hello from shard zero"]
        assert [r.json["input"] for r in shards[1].endpoint.requests] == ["hello from shard one"]

        # server settings, written by the process that runs that server, apply there and only there
        owner = emu.owner
        assert "→ echo" in await ephemeral(emu, "settings defaults", guild_a, owner, voice="echo")
        assert "→ nova" in await ephemeral(emu, "settings defaults", guild_b, owner, voice="nova")
        await speak(emu, guild_a, alice, "in a")
        await speak(emu, guild_b, alice, "in b")
        assert shards[0].endpoint.requests[-1].json["voice"] == "echo"
        assert shards[1].endpoint.requests[-1].json["voice"] == "nova"

        # a member's "everywhere" choice made through shard 0 is read by shard 1 from the shared database
        assert "shimmer" in await ephemeral(emu, "voice set", guild_a, bob, voice="shimmer", scope="everywhere")
        await speak(emu, guild_b, bob, "bob in b")
        assert shards[1].endpoint.requests[-1].json["voice"] == "shimmer"
        assert [r.json["input"] for r in shards[0].endpoint.requests] == ["hello from shard zero", "in a"]

        # per-shard health: each process reports the latency of its own shard and is ready
        for shard in shards:
            assert shard.process is not None
            await emu.wait_for(lambda: "ready as user" in shard.process.log, timeout=30, what="on_ready")  # noqa: B023
            status, text = await shard.get("/readyz")
            assert status == 200, text
            _, metrics = await shard.get("/metrics")
            other = 1 - shard.shard_id
            assert_gateway_latency_measured(metrics, shard=str(shard.shard_id))
            assert sample(metrics, "speechbot_gateway_latency_seconds", shard=str(other)) is None
            assert sample(metrics, "speechbot_speech_requests_total", outcome="ok") == len(shard.endpoint.requests)

        # a third process claiming shard 1 again is refused by Discord and says what to fix
        intruder = BotProcess({**emu.env(), **shards[1].env(), "DATA_DIR": str(tmp_path), "METRICS_PORT": ""},
                              tmp_path / "intruder.log")
        await intruder.start()
        assert intruder.process is not None
        # A configuration to change: exit 2, which the systemd unit does not restart.
        assert await asyncio.wait_for(intruder.process.wait(), 60) == 2
        assert "close code 4010" in intruder.log and "SHARD_IDS" in intruder.log
        assert log_problems(intruder.log, (emu.token, SPEECH_TEST_KEY)) == []
        await intruder.stop()
        await speak(emu, guild_b, alice, "still here")  # the running shard 1 is unaffected
        assert shards[1].endpoint.requests[-1].json["input"] == "still here"

    # neither process ever heard of the other one's guild
    assert str(guild_b.id) not in p0.log and str(guild_a.id) not in p1.log
    assert {shard_of(g.id, 2) for g in (guild_a, guild_b)} == {0, 1}


async def test_each_process_rejoins_only_its_own_guilds_voice_after_a_restart(
    discord_emulator: DiscordEmulator, tmp_path: Path, postgres_database_url: str
) -> None:
    emu = discord_emulator
    guild_a, guild_b = emu.add_guild("On shard 0", shard=(0, 2)), emu.add_guild("On shard 1", shard=(1, 2))
    shards = [Shard(emu, i, tmp_path / f"shard{i}", postgres_database_url) for i in (0, 1)]

    def in_voice(guild: Guild) -> bool:
        return emu.voice_connected(guild) and guild.voice_state_of(emu.bot_user.id) is not None

    async with AsyncExitStack() as stack:
        for shard in shards:
            await stack.enter_async_context(shard.endpoint)
        async with shards[0].running(), shards[1].running():
            join = await emu.invoke("join", {}, user=emu.user, guild=guild_a, channel=guild_a.channel_named("general"))
            assert "Joined" in (await join.wait_message(timeout=30)).content
            # the voice join in shard 1's guild goes through shard 1's session and plays there
            spoken = await emu.invoke("speak", {"text": "Hello world.", "output": "voice"}, user=emu.user,
                                      guild=guild_b, channel=guild_b.channel_named("general"))
            reply = await spoken.wait_message(timeout=30)
            assert not reply.ephemeral and f"<#{guild_b.channel_named('Voice').id}>" in reply.content
            session = await emu.wait_for(lambda: emu.voice.sessions(guild_b), timeout=20, what="voice in B")
            await session[-1].wait_packets(10, timeout=20)
            await session[-1].wait_idle(quiet=0.5, timeout=30)
            assert session[-1].check_stream() == []
            assert in_voice(guild_a) and in_voice(guild_b)
        assert not in_voice(guild_a) and not in_voice(guild_b)

        store = await Store.open(postgres_database_url, cache_ttl=0)
        try:
            assert {(r.guild_id, r.channel_id) for r in await store.voice_sessions()} == {
                (guild_a.id, guild_a.channel_named("Voice").id), (guild_b.id, guild_b.channel_named("Voice").id)}
        finally:
            await store.close()

        # shard 1 alone: it rejoins its guild and leaves shard 0's for shard 0
        async with shards[1].running() as p1:
            await emu.wait_for(lambda: "rejoined 1 of 1 remembered voice sessions (shard=1)" in p1.log, timeout=30,
                               what="shard 1's rejoin pass")
            assert in_voice(guild_b) and not in_voice(guild_a)
            async with shards[0].running() as p0:
                await emu.wait_for(lambda: "rejoined 1 of 1 remembered voice sessions (shard=0)" in p0.log,
                                   timeout=30, what="shard 0's rejoin pass")
                assert in_voice(guild_a) and in_voice(guild_b)


async def test_without_shard_count_one_process_runs_as_many_shards_as_discord_recommends(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    guild_a, guild_b = emu.add_guild("On shard 0", shard=(0, 2)), emu.add_guild("On shard 1", shard=(1, 2))
    emu.guilds_per_shard = 2  # three guilds: GET /gateway/bot recommends two shards
    port = free_port()
    env = {"DEV_GUILD_ID": "", "SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "METRICS_PORT": str(port)}
    async with running_bot(emu, tmp_path, **env) as bot, aiohttp.ClientSession() as http:
        await emu.wait_for(lambda: "ready as user" in bot.log, timeout=30, what="on_ready after both shards")
        assert ("GET", "/gateway/bot") in emu.requests
        assert sorted(session.shard for session in emu.sessions) == [[0, 2], [1, 2]]
        assert "shards 0,1 of 2" in bot.log
        for guild in (guild_a, guild_b):
            await speak(emu, guild, emu.user, f"hello {guild.name}")
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = await response.text()
        for shard in ("0", "1"):
            assert_gateway_latency_measured(metrics, shard=shard)


async def test_too_few_shards_for_discord_stops_with_what_to_change(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    emu.add_guild("Another")
    emu.max_guilds_per_session = 1  # Discord's 2500, scaled down: two guilds need two shards
    bot = BotProcess({**emu.env(), "SHARD_COUNT": "1", "DATA_DIR": str(tmp_path)}, tmp_path / "bot.log")
    await bot.start()
    assert bot.process is not None
    # A configuration to change: exit 2, which the systemd unit does not restart.
    assert await asyncio.wait_for(bot.process.wait(), 60) == 2
    await bot.stop()
    assert "close code 4011" in bot.log and "raise SHARD_COUNT" in bot.log
    assert log_problems(bot.log, (emu.token,)) == []
