"""End to end: moderators configure a server, members set their own voice, and ``/speak`` follows both.

One bot process serves several checks per test (each start costs about 1.5 s); the database is the bot's
SQLite file in ``DATA_DIR``, read directly where a test needs to see rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.storage.engine import create_engine
from bot.storage.schema import metadata
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_messages import EmulatedInteraction
from tests.loopback.discord_state import VIEW_CHANNEL, User
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.bot_process import running_bot


def bot_env(endpoint: SpeechEndpoint) -> dict[str, str]:
    return {
        "SPEECH_API_BASE_URL": endpoint.base_url,
        "SPEECH_API_KEY": SPEECH_TEST_KEY,
        "SPEECH_BACKEND": "openai",
        # No fault is injected here, and the loopback synthesizes before its first byte: a 3 s first-byte timeout
        # made the bot retry (two requests for one /speak) on a loaded machine.
        "SPEECH_TIMEOUT": "10",
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
    hidden = emu.build.channel(emu.guild, "staff", permission_overwrites=[
        {"id": str(emu.guild.id), "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)}])
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

        # what only Discord knows is checked too
        assert "Unknown voice 'zeus'" in await ephemeral_reply(emu, "settings defaults", owner, voice="zeus")
        refusal = await ephemeral_reply(emu, "settings read-channels", owner, add=hidden)
        assert f"I can't see <#{hidden.id}>" in refusal
        changed = await ephemeral_reply(emu, "settings read-channels", owner, add=emu.text_channel)
        assert f"Read channels: none (read-aloud is off) → <#{emu.text_channel.id}>" in changed
        assert "other than @everyone" in await ephemeral_reply(emu, "settings roles", owner, deny=emu.guild.everyone)
        assert "at least one option" in await ephemeral_reply(emu, "settings budget", owner)

        # the configured moderator role is enough, without Manage Server
        await ephemeral_reply(emu, "settings roles", owner, moderator=mods)
        emu.guild.member(member.id).roles.append(mods.id)
        changed = await ephemeral_reply(emu, "settings defaults", member, speed=2.0)
        assert "Default speed: 1.5× → 2×" in changed
        emu.guild.member(member.id).roles.remove(mods.id)
        assert "Only moderators" in await ephemeral_reply(emu, "settings defaults", member, speed=3.0)
        assert "already 2×" in await ephemeral_reply(emu, "settings defaults", owner, speed=2.0)
        await ephemeral_reply(emu, "voice set", member, voice="shimmer", scope="everywhere")

    # a new process on the same database, configured without the member's voice
    async with running_bot(emu, tmp_path, **bot_env(speech_endpoint), SPEECH_VOICES="alloy,echo,nova"):
        interaction = await run(emu, "speak", member, text="after the restart")
        notice = await interaction.wait_message(timeout=30, index=1)
        assert notice.ephemeral and "'shimmer' is no longer offered" in notice.content and "(nova)" in notice.content
        request = speech_endpoint.requests[-1].json
        assert (request["voice"], request["speed"], request["response_format"]) == ("nova", 2.0, "wav")
        second = await run(emu, "speak", member, text="told only once")
        assert (await second.wait_message(timeout=30)).attachments
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
        assert len(second.messages) == 1  # no second notice
        request = await spoken_request(emu, speech_endpoint, member, text="back to defaults")
        assert (request["voice"], request["response_format"]) == ("alloy", "opus") and "speed" not in request


async def refused_speak(emu: DiscordEmulator, endpoint: SpeechEndpoint, user: User, text: str) -> str:
    """``/speak`` that must be refused before anything reaches the speech endpoint; the refusal."""
    before = len(endpoint.requests)
    response = await (await run(emu, "speak", user, text=text)).wait_response(timeout=5)
    assert response.type == 4 and response.ephemeral, response
    assert len(endpoint.requests) == before
    return response.data["content"]


async def rows_naming(database: Path, user_id: int) -> dict[str, int]:
    """How many rows of each table hold ``user_id`` in a column that identifies a user."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        async with engine.connect() as conn:
            found = {}
            for table in metadata.tables.values():
                for column in (c for c in table.columns if c.info.get("user")):
                    count = await conn.scalar(select(func.count()).select_from(table).where(column == user_id))
                    found[f"{table.name}.{column.name}"] = count
            return found
    finally:
        await engine.dispose()


async def test_members_choose_their_voice_and_limits_mutes_and_roles_are_enforced(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, member, owner = discord_emulator, discord_emulator.user, discord_emulator.owner
    denied, required = emu.build.role(emu.guild, "no tts"), emu.build.role(emu.guild, "tts")
    roles = emu.guild.member(member.id).roles
    emu.guild.member(owner.id).roles.append(required.id)
    async with running_bot(emu, tmp_path, **bot_env(speech_endpoint)):
        await ephemeral_reply(emu, "settings defaults", owner, voice="nova")
        saved = await ephemeral_reply(emu, "voice set", member, voice="echo", speed=1.25)
        assert saved == "Saved in this server:\n• Voice: echo\n• Speed: 1.25×"
        request = await spoken_request(emu, speech_endpoint, member, text="my own voice")
        assert (request["voice"], request["speed"]) == ("echo", 1.25)
        assert "• echo (yours here)" in await ephemeral_reply(emu, "voices", member)
        shown = await ephemeral_reply(emu, "voice show", member)
        assert "Voice: echo (your choice)" in shown and "Instructions: none (bot default)" in shown
        assert "nothing changed" in await ephemeral_reply(emu, "voice reset", member, scope="everywhere")
        assert "Unknown voice 'zeus'" in await ephemeral_reply(emu, "voice set", member, voice="zeus")

        assert "Muted <@" in await ephemeral_reply(emu, "mute", owner, member=member)
        assert "muted you" in await refused_speak(emu, speech_endpoint, member, "hello")
        assert "Only moderators" in await ephemeral_reply(emu, "unmute", member, member=member)
        assert "Unmuted" in await ephemeral_reply(emu, "unmute", owner, member=member)

        await ephemeral_reply(emu, "settings roles", owner, deny=denied, required=required)
        assert f"need the <@&{required.id}> role" in await refused_speak(emu, speech_endpoint, member, "hi")
        roles.extend([required.id, denied.id])
        assert f"<@&{denied.id}> role cannot" in await refused_speak(emu, speech_endpoint, member, "hi")
        assert "Denied role" in await ephemeral_reply(emu, "settings reset", owner, setting="deny_role_id")
        await spoken_request(emu, speech_endpoint, member, text="allowed again")

        # budgets: usage so far is 12 + 13 characters; the rate limit counts from now
        changed = await ephemeral_reply(emu, "settings budget", owner, daily=40, per_member=60)
        assert "Daily budget: no limit → 40 characters" in changed
        await spoken_request(emu, speech_endpoint, member, text="ten chars!")
        refusal = await refused_speak(emu, speech_endpoint, member, "six ch")
        assert "only 5 are left in this server's daily speech budget" in refusal
        await spoken_request(emu, speech_endpoint, member, text="five!")
        assert "used its daily speech budget (40 of 40" in await refused_speak(emu, speech_endpoint, owner, "x")
        usage = await ephemeral_reply(emu, "usage", member)
        assert "Today: 40 characters in 4 requests of a 40 budget (0 left)" in usage
        assert "Per member" not in usage
        assert f"• <@{member.id}>: 40 characters" in await ephemeral_reply(emu, "usage", owner)
        await ephemeral_reply(emu, "settings reset", owner, setting="daily_char_budget")
        await spoken_request(emu, speech_endpoint, member, text="x" * 45)  # 15 + 45 = 60 in this minute
        assert "Slow down" in await refused_speak(emu, speech_endpoint, member, "one more")
        await spoken_request(emu, speech_endpoint, owner, text="another member has their own rate")

        # the moderator role lets a member edit the dictionary; their name goes with /forgetme
        await ephemeral_reply(emu, "settings roles", owner, moderator=required)
        await ephemeral_reply(emu, "dictionary add", member, pattern="brb", replacement="be right back")
        await ephemeral_reply(emu, "mute", member, member=emu.other_user)
        database = tmp_path / "speechbot.db"
        before = await rows_naming(database, member.id)
        assert before["user_prefs.user_id"] == 1 and before["usage.user_id"] == 1
        assert before["dictionary_entries.created_by"] == 1 and before["muted_users.muted_by"] == 1

        forgotten = await ephemeral_reply(emu, "forgetme", member)
        assert "Deleted everything stored about you" in forgotten
        assert set((await rows_naming(database, member.id)).values()) == {0}
        usage = await ephemeral_reply(emu, "usage", owner)
        assert "forgotten users: 85 characters" in usage and "This month: 118 characters" in usage
        request = await spoken_request(emu, speech_endpoint, member, text="who am I")
        assert (request["voice"], "speed" in request) == ("nova", False)  # the server's default again


async def test_dictionary_import_is_all_or_nothing_and_export_gives_it_back(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, owner = discord_emulator, discord_emulator.owner
    good = [
        {"pattern": "brb", "replacement": "be right back", "is_regex": False},
        {"pattern": r"\bk+\b", "replacement": "okay", "is_regex": True},
    ]
    async with running_bot(emu, tmp_path, **bot_env(speech_endpoint)):
        await ephemeral_reply(emu, "dictionary add", owner, pattern="lol", replacement="laughing")
        for content, expected in [
            (b"{not json", "not valid JSON"),
            (json.dumps({"pattern": "a", "replacement": "b"}).encode(), "JSON list of entries"),
            (json.dumps([*good, {"pattern": "(a+)+$", "replacement": "x", "is_regex": True}]).encode(), "Entry 3"),
            (json.dumps([*good, {"pattern": "brb", "replacement": "again"}]).encode(), "more than once"),
        ]:
            interaction = await run(emu, "dictionary import", owner, file=("dictionary.json", content))
            message = await interaction.wait_message(timeout=10)
            assert message.ephemeral and expected in message.content, message.content
        listed = await ephemeral_reply(emu, "dictionary list", owner)
        assert "(1 entries" in listed and "`lol` → laughing" in listed

        interaction = await run(emu, "dictionary import", owner, file=("dictionary.json", json.dumps(good).encode()))
        message = await interaction.wait_message(timeout=10)
        assert message.ephemeral and message.content == "Imported 2 entries; they replace the 1 there were before."

        exported = await (await run(emu, "dictionary export", owner)).wait_message(timeout=10)
        assert exported.ephemeral and exported.attachments[0].filename == "dictionary.json"
        assert json.loads(exported.attachments[0].data) == good
        assert "Removed" in await ephemeral_reply(emu, "dictionary remove", owner, pattern="brb")
        assert "no entry" in await ephemeral_reply(emu, "dictionary remove", owner, pattern="brb")
        assert "Only moderators" in await ephemeral_reply(emu, "dictionary list", emu.user)
