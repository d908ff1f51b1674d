"""Self-tests of the loopback Discord, driven by a real discord.py client over real sockets."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import pytest_asyncio
import yarl
from discord import app_commands

from tests.loopback.discord import DiscordEmulator

UPLOAD = os.urandom(48_000)  # stands in for an .opus file; compared byte for byte


class MiniBot(discord.Client):
    """The smallest bot with the shapes speechbot uses: defer + followup with a file, a group, errors kept."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.1,
                         allowed_mentions=discord.AllowedMentions.none())
        self.guild_id = guild_id
        self.tree = app_commands.CommandTree(self)
        self.command_errors: list[BaseException] = []
        self.reply_delay = 0.0
        self._add_commands()

        @self.tree.error
        async def keep(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.command_errors.append(getattr(error, "original", error))

    def _add_commands(self) -> None:
        @self.tree.command(description="Speak text aloud")
        @app_commands.describe(text="What to say", speed="Speaking rate")
        async def speak(interaction: discord.Interaction, text: str, speed: float = 1.0) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(f"{text} at {speed}", file=discord.File(io.BytesIO(UPLOAD), "tts.opus"))

        @self.tree.command(description="Echo text")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            await asyncio.sleep(self.reply_delay)
            await interaction.response.send_message(text, ephemeral=True)

        settings = app_commands.Group(name="settings", description="Server settings")

        @settings.command(name="voice", description="Choose the voice")
        async def settings_voice(interaction: discord.Interaction, name: str, rate: int) -> None:
            await interaction.response.send_message(f"{name}/{rate}/{type(rate).__name__}")

        self.tree.add_command(settings)

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)


@pytest_asyncio.fixture
async def bot(discord_emulator: DiscordEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MiniBot]:
    """A MiniBot logged in to the emulator (URLs patched on discord.py's classes, restored afterwards)."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord_emulator.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(discord_emulator.gateway_url))
    client = MiniBot(discord_emulator.guild.id)
    task = asyncio.create_task(client.start(discord_emulator.token))
    try:
        await discord_emulator.wait_ready(timeout=10)
        await discord_emulator.wait_commands(timeout=10, guild_id=discord_emulator.guild.id)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 10)


async def test_login_identify_and_command_sync_are_recorded(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    emu = discord_emulator
    assert emu.requests[:3] == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
        ("PUT", f"/applications/{emu.application_id}/guilds/{emu.guild.id}/commands"),
    ]
    (session,) = emu.sessions
    assert session.intents == discord.Intents.default().value
    commands = {c["name"]: c for c in emu.commands[emu.guild.id]}
    assert set(commands) == {"speak", "echo", "settings"}
    assert commands["speak"]["guild_id"] == str(emu.guild.id)
    await bot.wait_until_ready()
    assert bot.user.id == emu.bot_user.id
    guild = bot.get_guild(emu.guild.id)
    assert guild.me is not None and guild.get_member(emu.user.id).voice.channel.id == emu.voice_channel.id


async def test_defer_then_followup_delivers_the_file_byte_for_byte(discord_emulator: DiscordEmulator,
                                                                   bot: MiniBot) -> None:
    inter = await discord_emulator.invoke("speak", {"text": "hi", "speed": 1.5}, user=discord_emulator.user)
    response = await inter.wait_response(timeout=5)
    message = await inter.wait_message(timeout=10)
    assert response.type == 5 and response.elapsed < 3
    assert message.content == "hi at 1.5" and not message.ephemeral
    (attachment,) = message.attachments
    assert attachment.filename == "tts.opus" and attachment.data == UPLOAD
    assert message.allowed_mentions == {"parse": []}
    assert bot.command_errors == []


async def test_subcommand_options_are_typed_from_the_registered_schema(discord_emulator: DiscordEmulator,
                                                                       bot: MiniBot) -> None:
    inter = await discord_emulator.invoke("settings voice", {"name": "alloy", "rate": 3})
    message = await inter.wait_message(timeout=5)
    assert message.content == "alloy/3/int"
    with pytest.raises(TypeError):
        await discord_emulator.invoke("settings voice", {"name": "alloy", "rate": "3"})
    with pytest.raises(LookupError):
        await discord_emulator.invoke("nope")


async def test_late_initial_response_gets_10062(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    discord_emulator.interaction_deadline = 0.3
    bot.reply_delay = 0.6
    inter = await discord_emulator.invoke("echo", {"text": "too late"})
    await discord_emulator.wait_for(lambda: bot.command_errors, timeout=5, what="the bot's error")
    (error,) = bot.command_errors
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert inter.response is None
    assert any("10062" in f for f in discord_emulator.failures)
    discord_emulator.failures.clear()


async def test_second_initial_response_gets_40060(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    inter = await discord_emulator.invoke("echo", {"text": "once"})
    assert (await inter.wait_message(timeout=5)).ephemeral
    url = f"{discord_emulator.api_base}/interactions/{inter.id}/{inter.token}/callback"
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 4, "data": {"content": "again"}}) as r:
        assert r.status == 400 and (await r.json())["code"] == 40060
    assert any("40060" in f for f in discord_emulator.failures)
    discord_emulator.failures.clear()


async def test_update_message_is_only_for_component_interactions(
    discord_emulator: DiscordEmulator, bot: MiniBot
) -> None:
    """Callback types 6 and 7 act on the message whose component was used; a slash command has none: 400."""
    bot.reply_delay = 0.5
    inter = await discord_emulator.invoke("echo", {"text": "not a component"})
    url = f"{discord_emulator.api_base}/interactions/{inter.id}/{inter.token}/callback"
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 7, "data": {"content": "x"}}) as r:
        assert r.status == 400 and (await r.json())["code"] == 50035
    assert (await inter.wait_message(timeout=5)).content  # the bot's own answer still lands
    assert inter.response is not None and inter.response.type == 4
    discord_emulator.failures.clear()


async def test_upload_over_the_size_limit_gets_413(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    inter = await discord_emulator.invoke("speak", {"text": "big"}, attachment_size_limit=len(UPLOAD) - 1)
    await discord_emulator.wait_for(lambda: bot.command_errors, timeout=5, what="the bot's error")
    (error,) = bot.command_errors
    assert isinstance(error, discord.HTTPException) and error.status == 413 and error.code == 40005
    assert inter.messages == []
    assert any("40005" in f for f in discord_emulator.failures)
    discord_emulator.failures.clear()


async def test_unknown_route_is_a_json_404_and_a_failure(discord_emulator: DiscordEmulator) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{discord_emulator.api_base}/nope") as r:
        assert r.status == 404 and r.headers["Content-Type"] == "application/json"
        assert json.loads(await r.read()) == {"message": "404: Not Found", "code": 0}
    assert discord_emulator.failures == ["unknown route: GET /api/v10/nope"]
    discord_emulator.failures.clear()


async def test_body_violating_the_openapi_schema_is_a_failure(discord_emulator: DiscordEmulator) -> None:
    url = f"{discord_emulator.api_base}/channels/{discord_emulator.text_channel.id}/messages"
    headers = {"Authorization": f"Bot {discord_emulator.token}", "User-Agent": "DiscordBot (test, 1)"}
    async with aiohttp.ClientSession() as http, http.post(url, json={"content": 5}, headers=headers) as r:
        assert r.status == 400 and (await r.json())["code"] == 50035
    (failure,) = discord_emulator.failures
    assert "create_message: content: 5 is not of type" in failure
    discord_emulator.failures.clear()


async def test_ephemeral_defer_then_original_edit_with_a_file(discord_emulator: DiscordEmulator,
                                                             bot: MiniBot) -> None:
    @bot.tree.command(guild=discord.Object(discord_emulator.guild.id), description="Edit the original")
    async def edit(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        file = discord.File(io.BytesIO(UPLOAD), "a.opus")
        await interaction.edit_original_response(content="done", attachments=[file])
        await interaction.followup.send("and one more", ephemeral=True)

    await bot.tree.sync(guild=discord.Object(discord_emulator.guild.id))
    inter = await discord_emulator.invoke("edit")
    assert (await inter.wait_response(timeout=5)).ephemeral
    first = await inter.wait_message(timeout=5)
    second = await inter.wait_message(timeout=5, index=1)
    assert (first.content, first.ephemeral, first.attachments[0].data) == ("done", True, UPLOAD)
    assert first is inter.original and (second.content, second.ephemeral) == ("and one more", True)
    async with aiohttp.ClientSession() as http, http.get(first.attachments[0].url) as r:
        assert await r.read() == UPLOAD


async def test_channel_message_with_a_file(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    channel = bot.get_channel(discord_emulator.text_channel.id)
    sent = await channel.send("plain", file=discord.File(io.BytesIO(UPLOAD), "x.opus"))
    (message,) = discord_emulator.channel_messages
    assert sent.id == message.id and message.content == "plain" and message.attachments[0].data == UPLOAD
    assert message.attachments[0].content_type == "audio/ogg"


async def test_injected_rate_limit_is_honoured_and_retried(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    discord_emulator.fail_next("POST", r"^/webhooks/", 429, {"message": "You are being rate limited.",
                               "retry_after": 0.05, "global": False}, {"Via": "1.1 google"})
    inter = await discord_emulator.invoke("speak", {"text": "retry"})
    assert (await inter.wait_message(timeout=10)).attachments[0].data == UPLOAD
    assert [m for m, p in discord_emulator.requests if p.startswith("/webhooks/")] == ["POST", "POST"]


async def test_bot_routes_need_the_token_and_token_routes_refuse_it(discord_emulator: DiscordEmulator) -> None:
    api = discord_emulator.api_base
    agent = {"User-Agent": "DiscordBot (test, 1)"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/users/@me", headers=agent) as r:
            assert r.status == 401
        async with http.get(f"{api}/users/@me", headers={**agent, "Authorization": "Bot wrong"}) as r:
            assert r.status == 401
        async with http.get(f"{api}/gateway/bot", headers={**agent, "Authorization": "Bot test-token"}) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert (await r.json())["url"] == discord_emulator.gateway_url
        async with http.post(f"{api}/interactions/1/x/callback", json={"type": 5},
                             headers={"Authorization": "Bot test-token"}) as r:
            assert r.status == 400
    assert len(discord_emulator.failures) == 2  # the missing Authorization and the superfluous one
    discord_emulator.failures.clear()


async def test_multipart_files_must_be_referenced_by_attachments(discord_emulator: DiscordEmulator) -> None:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps({"content": "x", "attachments": [{"id": 0, "filename": "a.opus"}]}))
    form.add_field("files[1]", b"data", filename="b.opus", content_type="application/octet-stream")
    url = f"{discord_emulator.api_base}/channels/{discord_emulator.text_channel.id}/messages"
    headers = {"Authorization": "Bot test-token", "User-Agent": "DiscordBot (test, 1)"}
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as r:
        assert r.status == 400 and (await r.json())["code"] == 50035
    assert discord_emulator.channel_messages == [] and len(discord_emulator.failures) == 1
    discord_emulator.failures.clear()


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> dict:
    return json.loads((await ws.receive(timeout=5)).data)


async def test_gateway_closes_4004_on_a_bad_token(discord_emulator: DiscordEmulator) -> None:
    url = discord_emulator.gateway_url + "?v=10&encoding=json"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await _receive(ws))["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        await ws.receive(timeout=5)
        assert ws.close_code == 4004


async def test_resume_replays_missed_events(discord_emulator: DiscordEmulator) -> None:
    url = discord_emulator.gateway_url + "?v=10&encoding=json"
    identify = {"op": 2, "d": {"token": "test-token", "intents": 513, "properties": {}}}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            await _receive(ws)
            await ws.send_json(identify)
            ready, guild = await _receive(ws), await _receive(ws)
            assert (ready["t"], ready["s"], guild["t"], guild["s"]) == ("READY", 1, "GUILD_CREATE", 2)
        await discord_emulator.dispatch("TYPING_START", {"channel_id": "1"})  # missed while disconnected
        async with http.ws_connect(url) as ws:
            await _receive(ws)
            await ws.send_json({"op": 6, "d": {"token": "test-token", "session_id": ready["d"]["session_id"],
                                               "seq": 2}})
            missed, resumed = await _receive(ws), await _receive(ws)
            assert (missed["t"], missed["s"], resumed["t"]) == ("TYPING_START", 3, "RESUMED")
            await ws.send_json({"op": 1, "d": 4})
            assert await _receive(ws) == {"op": 11}
    assert [op for op, _ in discord_emulator.gateway_ops] == [2, 6, 1]


async def _identify(http: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
    ws = await http.ws_connect(url)
    await _receive(ws)
    await ws.send_json({"op": 2, "d": {"token": "test-token", "intents": 513, "properties": {}}})
    ready = await _receive(ws)
    await _receive(ws)  # GUILD_CREATE, s=2
    return ws, ready


@pytest.mark.parametrize("change", [{"session_id": "nope"}, {"seq": 3}, {"seq": -1}, {"seq": None},
                                    {"token": "wrong"}])
async def test_a_resume_discord_would_refuse_gets_op9_false(discord_emulator: DiscordEmulator, change: dict) -> None:
    url = discord_emulator.gateway_url + "?v=10&encoding=json"
    async with aiohttp.ClientSession() as http:
        ws, ready = await _identify(http, url)
        await ws.close()
        resume = {"token": "test-token", "session_id": ready["d"]["session_id"], "seq": 2, **change}
        async with http.ws_connect(url) as ws:
            await _receive(ws)
            await ws.send_json({"op": 6, "d": resume})
            assert await _receive(ws) == {"op": 9, "d": False}
        if "seq" in change:  # a seq the session never sent ends it: not even a correct RESUME works now
            assert discord_emulator.sessions == []
            async with http.ws_connect(url) as ws:
                await _receive(ws)
                await ws.send_json({"op": 6, "d": {**resume, "seq": 2}})
                assert await _receive(ws) == {"op": 9, "d": False}


async def test_a_resume_takes_over_a_socket_still_open_and_replays_in_order(discord_emulator: DiscordEmulator) -> None:
    url = discord_emulator.gateway_url + "?v=10&encoding=json"
    async with aiohttp.ClientSession() as http:
        old, ready = await _identify(http, url)
        for n in range(3):
            await discord_emulator.dispatch("TYPING_START", {"channel_id": str(n)})
        async with http.ws_connect(url) as ws:
            await _receive(ws)
            await ws.send_json({"op": 6, "d": {"token": "test-token", "session_id": ready["d"]["session_id"],
                                               "seq": 3}})
            replayed = [await _receive(ws) for _ in range(3)]
            assert [(m["t"], m["s"]) for m in replayed] == [("TYPING_START", 4), ("TYPING_START", 5), ("RESUMED", 6)]
        while (message := await old.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            pass  # what it got before the RESUME took over
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4000)
        await old.close()


async def test_invalid_session_false_forgets_the_session(discord_emulator: DiscordEmulator) -> None:
    url = discord_emulator.gateway_url + "?v=10&encoding=json"
    async with aiohttp.ClientSession() as http:
        ws, ready = await _identify(http, url)
        await discord_emulator.invalidate_session(resumable=False)
        assert await _receive(ws) == {"op": 9, "d": False}
        assert discord_emulator.sessions == [] and discord_emulator.gateway.invalidated == [ready["d"]["session_id"]]
        await ws.close()


async def test_a_rate_limited_route_must_wait_and_a_cloudflare_ban_looks_like_one(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    emu.rate_limit("GET", r"^/users/@me$", retry_after=30, scope="user")
    emu.cloudflare_ban("GET", r"^/gateway/bot$")
    headers = {"Authorization": "Bot test-token", "User-Agent": "DiscordBot (test, 1)"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.api_base}/users/@me", headers=headers) as r:
            assert r.status == 429 and r.headers["Content-Type"] == "application/json"
            assert r.headers["Via"] and r.headers["Retry-After"] == "30" and r.headers["X-RateLimit-Scope"] == "user"
            assert float(r.headers["X-RateLimit-Reset-After"]) == 30 and r.headers["X-RateLimit-Remaining"] == "0"
            assert await r.json() == {"message": "You are being rate limited.", "retry_after": 30, "global": False}
        async with http.get(f"{emu.api_base}/users/@me", headers=headers) as r:
            assert r.status == 200  # served, but too early:
        assert len(emu.failures) == 1 and "before the rate limit" in emu.failures[0]
        emu.failures.clear()
        async with http.get(f"{emu.api_base}/gateway/bot", headers=headers) as r:
            assert r.status == 429 and "Via" not in r.headers and "X-RateLimit-Scope" not in r.headers
            assert r.headers["Content-Type"].startswith("text/html") and "1015" in await r.text()
    assert [(c.path, c.status) for c in emu.rest_calls] == [("/users/@me", 429), ("/users/@me", 200),
                                                            ("/gateway/bot", 429)]


async def test_real_client_resumes_after_a_reconnect_request(discord_emulator: DiscordEmulator,
                                                            bot: MiniBot) -> None:
    await discord_emulator.request_reconnect()
    await discord_emulator.wait_for(lambda: any(op == 6 for op, _ in discord_emulator.gateway_ops), timeout=10,
                                    what="RESUME")
    inter = await discord_emulator.invoke("echo", {"text": "still here"})
    assert (await inter.wait_message(timeout=5)).content == "still here"


async def test_op_hooks_and_dispatch_extend_the_gateway(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    presences = []

    async def on_presence(session, d) -> None:  # noqa: ANN001 - the hook signature
        presences.append(d["status"])
        role = discord_emulator.build.role(discord_emulator.guild, "DJ")
        await discord_emulator.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(discord_emulator.guild.id),
                                                              "role": role.to_payload()})

    discord_emulator.on_op(3, on_presence)
    await bot.change_presence(status=discord.Status.idle)
    guild = bot.get_guild(discord_emulator.guild.id)
    await discord_emulator.wait_for(lambda: discord.utils.get(guild.roles, name="DJ"), timeout=5, what="the role")
    assert presences == ["idle"]


async def test_member_and_choice_options_reach_the_command(discord_emulator: DiscordEmulator, bot: MiniBot) -> None:
    guild = discord.Object(discord_emulator.guild.id)

    @bot.tree.command(guild=guild, description="Greet someone")
    @app_commands.choices(tone=[app_commands.Choice(name="warm", value="warm")])
    async def greet(interaction: discord.Interaction, who: discord.Member, tone: app_commands.Choice[str]) -> None:
        await interaction.response.send_message(f"{tone.value} hello {who.id} in {who.voice and who.voice.channel.id}")

    await bot.tree.sync(guild=guild)
    inter = await discord_emulator.invoke("greet", {"who": discord_emulator.user, "tone": "warm"})
    message = await inter.wait_message(timeout=5)
    assert message.content == f"warm hello {discord_emulator.user.id} in {discord_emulator.voice_channel.id}"
    with pytest.raises(ValueError):
        await discord_emulator.invoke("greet", {"who": discord_emulator.user, "tone": "cold"})
