"""End to end: moderators configure a server, members set their own voice, and ``/speak`` follows both.

One bot process serves several checks per test (each start costs about 1.5 s); the database is the bot's
SQLite file in ``DATA_DIR``, read directly where a test needs to see rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bot_process import running_bot
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_messages import EmulatedInteraction
from tests.loopback.discord_state import User
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint


def bot_env(endpoint: SpeechEndpoint) -> dict[str, str]:
    return {
        "SPEECH_API_BASE_URL": endpoint.base_url,
        "SPEECH_API_KEY": SPEECH_TEST_KEY,
        "SPEECH_BACKEND": "openai",
        "SPEECH_TIMEOUT": "3",
    }


async def run(emu: DiscordEmulator, command: str, user: User, **options: Any) -> EmulatedInteraction:
    return await emu.invoke(command, options, user=user, guild=emu.guild, channel=emu.text_channel)


async def ephemeral_reply(emu: DiscordEmulator, command: str, user: User, **options: Any) -> str:
    """The text of an immediate ephemeral reply (every settings change and every refusal is one)."""
    response = await (await run(emu, command, user, **options)).wait_response(timeout=5)
    assert response.type == 4 and response.ephemeral, response
    assert response.data.get("allowed_mentions") == {"parse": []}
    return response.data.get("content") or ""


async def spoken_request(emu: DiscordEmulator, endpoint: SpeechEndpoint, user: User, **options: Any) -> dict:
    """``/speak`` that must succeed; the JSON the speech endpoint received for it."""
    before = len(endpoint.requests)
    message = await (await run(emu, "speak", user, **options)).wait_message(timeout=30)
    assert message.attachments and not message.ephemeral, message.content
    assert len(endpoint.requests) == before + 1
    return endpoint.requests[-1].json


async def test_a_moderator_setting_applies_to_the_next_speak_and_survives_a_restart(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, member, owner = discord_emulator, discord_emulator.user, discord_emulator.owner
    mods = emu.build.role(emu.guild, "tts mods")
    commands = None
    async with running_bot(emu, tmp_path, **bot_env(speech_endpoint)):
        commands = await emu.wait_commands(timeout=5, guild_id=emu.guild.id)
        settings = next(c for c in commands if c["name"] == "settings")
        assert settings["default_member_permissions"] == str(1 << 5)  # Manage Server
        assert settings["dm_permission"] is False  # servers only

        # visible to the member (a server may override the default permissions) but refused when run
        refusal = await ephemeral_reply(emu, "settings defaults", member, voice="nova")
        assert "Only moderators" in refusal and "Manage Server" in refusal
        assert (await spoken_request(emu, speech_endpoint, member, text="hello"))["voice"] == "alloy"

        changed = await ephemeral_reply(emu, "settings defaults", owner, voice="nova", speed=1.5, format="wav")
        assert "Default voice: bot default (alloy) → nova" in changed
        assert "Default speed: 1× → 1.5×" in changed
        assert "Default format: bot default (opus) → wav" in changed
        request = await spoken_request(emu, speech_endpoint, member, text="hello again")
        assert (request["voice"], request["speed"], request["response_format"]) == ("nova", 1.5, "wav")

        # the configured moderator role is enough, without Manage Server
        await ephemeral_reply(emu, "settings roles", owner, moderator=mods)
        emu.guild.member(member.id).roles.append(mods.id)
        changed = await ephemeral_reply(emu, "settings defaults", member, speed=2.0)
        assert "Default speed: 1.5× → 2×" in changed
        emu.guild.member(member.id).roles.remove(mods.id)
        assert "Only moderators" in await ephemeral_reply(emu, "settings defaults", member, speed=3.0)
        assert "already 2×" in await ephemeral_reply(emu, "settings defaults", owner, speed=2.0)

    async with running_bot(emu, tmp_path, **bot_env(speech_endpoint)):  # a new process, the same database
        request = await spoken_request(emu, speech_endpoint, member, text="after the restart")
        assert (request["voice"], request["speed"], request["response_format"]) == ("nova", 2.0, "wav")
        # an explicit choice still wins over the server's default
        request = await spoken_request(emu, speech_endpoint, member, text="mine", voice="echo", speed=1.0)
        assert (request["voice"], request.get("speed", 1.0)) == ("echo", 1.0)

        shown = await (await run(emu, "settings show", owner)).wait_response(timeout=5)
        assert shown.ephemeral
        [embed] = shown.data["embeds"]
        fields = {field["name"]: field["value"] for field in embed["fields"]}
        assert "**Default voice:** nova" in fields["Speaking defaults"]
        assert f"**Moderator role:** <@&{mods.id}>" in fields["Access"]

        reset = await ephemeral_reply(emu, "settings reset", owner)
        assert "Default voice: nova → bot default (alloy)" in reset
        request = await spoken_request(emu, speech_endpoint, member, text="back to defaults")
        assert (request["voice"], request["response_format"]) == ("alloy", "opus") and "speed" not in request
