"""Self-tests of the loopback gateway's sharding, over raw websockets (the real bot is in test_e2e_shards.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_gateway import shard_of
from tests.loopback.discord_state import Guild

AGENT = {"User-Agent": "DiscordBot (test, 1)", "Authorization": "Bot test-token"}


class Client:
    """One raw gateway connection that has identified (or been refused)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def receive(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=5)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"closed with {self.ws.close_code}")
        return json.loads(message.data)

    async def ready(self) -> tuple[dict[str, Any], list[int]]:
        """READY's data and the ids of the GUILD_CREATEs that follow it (up to the first other event)."""
        ready = await self.receive()
        assert ready["t"] == "READY"
        created = []
        for _ in ready["d"]["guilds"]:
            event = await self.receive()
            assert event["t"] == "GUILD_CREATE"
            created.append(int(event["d"]["id"]))
        return ready["d"], created


@asynccontextmanager
async def identified(emu: DiscordEmulator, shard: Any = None) -> AsyncIterator[Client]:
    identify: dict[str, Any] = {"token": emu.token, "intents": 513, "properties": {}}
    if shard is not None:
        identify["shard"] = shard
    async with aiohttp.ClientSession() as http, http.ws_connect(emu.gateway_url + "?v=10&encoding=json") as ws:
        client = Client(ws)
        assert (await client.receive())["op"] == 10
        await ws.send_json({"op": 2, "d": identify})
        yield client


def two_shard_world(emu: DiscordEmulator) -> tuple[Guild, Guild]:
    """One more guild on each shard of two (the default guild lands on either)."""
    return emu.add_guild("Zero", shard=(0, 2)), emu.add_guild("One", shard=(1, 2))


async def test_each_shard_hears_only_of_its_own_guilds(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    zero, one = two_shard_world(emu)
    expected = {i: sorted(g.id for g in emu.guilds if shard_of(g.id, 2) == i) for i in (0, 1)}
    assert zero.id in expected[0] and one.id in expected[1]

    async with identified(emu, [0, 2]) as first, identified(emu, [1, 2]) as second:
        ready0, created0 = await first.ready()
        ready1, created1 = await second.ready()
        assert ready0["shard"] == [0, 2] and ready1["shard"] == [1, 2]
        assert sorted(int(g["id"]) for g in ready0["guilds"]) == sorted(created0) == expected[0]
        assert sorted(int(g["id"]) for g in ready1["guilds"]) == sorted(created1) == expected[1]

        await emu.dispatch("TYPING_START", {"guild_id": str(one.id), "channel_id": "1", "user_id": "2"})
        await emu.dispatch("TYPING_START", {"guild_id": str(zero.id), "channel_id": "1", "user_id": "2"})
        await emu.dispatch("TYPING_START", {"channel_id": "1", "user_id": "2"})  # a DM: shard 0
        assert [(await second.receive())["d"].get("guild_id")] == [str(one.id)]
        assert [(await first.receive())["d"].get("guild_id") for _ in range(2)] == [str(zero.id), None]


async def test_an_unsharded_session_carries_every_guild(discord_emulator: DiscordEmulator) -> None:
    two_shard_world(discord_emulator)
    async with identified(discord_emulator) as client:
        _ready, created = await client.ready()
        assert sorted(created) == sorted(g.id for g in discord_emulator.guilds)


@pytest.mark.parametrize("shard", [[2, 2], [0, 0], [-1, 2], [0], "0,1", [0, "2"], [True, 2]])
async def test_a_malformed_shard_closes_4010(discord_emulator: DiscordEmulator, shard: Any) -> None:
    async with identified(discord_emulator, shard) as client:
        with pytest.raises(ConnectionError, match="4010"):
            await client.receive()
    assert discord_emulator.sessions == []


async def test_a_duplicate_or_inconsistent_shard_closes_4010_while_the_first_is_connected(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    async with identified(emu, [0, 2]) as first:
        await first.ready()
        for shard in ([0, 2], [1, 3], None):  # the same shard again; another count; unsharded is [0, 1]
            async with identified(emu, shard) as refused:
                with pytest.raises(ConnectionError, match="4010"):
                    await refused.receive()
        async with identified(emu, [1, 2]) as second:
            await second.ready()
    # Once nobody holds a shard, a new layout is fine (e.g. every process restarted with more shards).
    async with identified(emu, [2, 3]) as resharded:
        assert (await resharded.ready())[0]["shard"] == [2, 3]


async def test_too_many_guilds_on_one_session_closes_4011(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    two_shard_world(emu)
    emu.max_guilds_per_session = 2
    async with identified(emu) as unsharded:
        with pytest.raises(ConnectionError, match="4011"):
            await unsharded.receive()
    async with identified(emu, [0, 2]) as a, identified(emu, [1, 2]) as b:  # 3 guilds: 2 + 1 either way
        assert sorted([len((await a.ready())[1]), len((await b.ready())[1])]) == [1, 2]


async def test_gateway_bot_recommends_shards_by_guild_count(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    two_shard_world(emu)

    async def recommended() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{emu.api_base}/gateway/bot", headers=AGENT) as r:
            return await r.json()

    assert (await recommended())["shards"] == 1
    emu.guilds_per_shard = 2
    body = await recommended()
    assert body["shards"] == 2 and body["url"] == emu.gateway_url
    async with identified(emu, [0, 2]) as client:
        await client.ready()
    assert (await recommended())["session_start_limit"]["remaining"] == body["session_start_limit"]["remaining"] - 1


async def test_voice_or_member_requests_for_another_shards_guild_are_failures(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    _zero, one = two_shard_world(emu)
    async with identified(emu, [0, 2]) as client:
        await client.ready()
        await client.ws.send_json({"op": 4, "d": {"guild_id": str(one.id), "channel_id": None,
                                                  "self_mute": False, "self_deaf": False}})
        await client.ws.send_json({"op": 8, "d": {"guild_id": str(one.id), "query": "", "limit": 0}})
        await client.ws.send_json({"op": 1, "d": None})
        assert (await client.receive())["op"] == 11  # both were handled (and refused) before the heartbeat
    assert len(emu.failures) == 2 and all("does not carry it" in f for f in emu.failures)
    emu.failures.clear()
