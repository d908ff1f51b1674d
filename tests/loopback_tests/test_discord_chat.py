"""The loopback Discord's chat events as a gateway client receives them, with the MESSAGE_CONTENT rule."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_chat import MESSAGE_CONTENT_INTENT

GUILDS, GUILD_MESSAGES = 1 << 0, 1 << 9


async def events(emu: DiscordEmulator, intents: int, act: Any, count: int) -> list[dict[str, Any]]:
    """Identify with ``intents``, wait for READY and GUILD_CREATE, run ``act()``, return the next events."""
    async with aiohttp.ClientSession() as http, http.ws_connect(emu.gateway_url + "?v=10&encoding=json") as ws:
        await ws.receive_json()  # HELLO
        await ws.send_str(json.dumps({"op": 2, "d": {"token": emu.token, "intents": intents, "properties": {}}}))
        while (await ws.receive_json()).get("t") != "GUILD_CREATE":
            pass
        await act()
        return [(await ws.receive_json(timeout=5)) for _ in range(count)]


async def test_without_the_intent_content_is_empty_unless_the_bot_is_mentioned(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator

    async def act() -> None:
        await emu.chat.send(emu.user, emu.text_channel, "hello", attachments=[
            {"filename": "a.png", "size": 1, "url": "https://cdn/a.png", "proxy_url": "https://cdn/a.png"}])
        await emu.chat.send(emu.user, emu.text_channel, f"<@{emu.bot_user.id}> hi", mentions=[emu.bot_user])

    plain, mentioned = await events(emu, GUILDS | GUILD_MESSAGES, act, 2)
    assert plain["t"] == "MESSAGE_CREATE" and plain["d"]["content"] == "" and plain["d"]["attachments"] == []
    assert mentioned["d"]["content"] == f"<@{emu.bot_user.id}> hi"


async def test_with_the_intent_edits_and_deletions_arrive_as_discord_sends_them(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator

    async def act() -> None:
        first = await emu.chat.send(emu.user, emu.voice_channel, "hello", flags=1 << 12)
        await emu.chat.edit(first, "hello again")
        second = await emu.chat.send(emu.user, emu.voice_channel, "bye")
        await emu.chat.delete(first)
        await emu.chat.bulk_delete([second])

    created, updated, _, deleted, bulk = await events(emu, GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT_INTENT, act, 5)
    assert [e["t"] for e in (created, updated, deleted, bulk)] == [
        "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"]
    assert created["d"]["content"] == "hello" and created["d"]["flags"] == 1 << 12
    assert created["d"]["member"]["roles"] == [] and "user" not in created["d"]["member"]
    assert updated["d"]["content"] == "hello again" and updated["d"]["edited_timestamp"] is not None
    assert deleted["d"]["id"] == created["d"]["id"]
    assert bulk["d"]["ids"] == [str(emu.chat.messages[max(emu.chat.messages)].id)]


async def test_asking_for_the_intent_when_the_portal_has_it_off_closes_4014(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    emu.application_flags = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(emu.gateway_url + "?v=10&encoding=json") as ws:
        await ws.receive_json()  # HELLO
        identify = {"token": emu.token, "intents": GUILDS | MESSAGE_CONTENT_INTENT, "properties": {}}
        await ws.send_str(json.dumps({"op": 2, "d": identify}))
        closed = await ws.receive(timeout=5)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4014
