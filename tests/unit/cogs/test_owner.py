"""``/owner`` in-process: only the application's owner (as the loopback's ``GET /oauth2/applications/@me`` says)
may use it; blocks and the kill switch reach every command and what is spoken, and persist."""

from __future__ import annotations

from pathlib import Path

from bot.owner_controls import BLOCKED_GUILD, BLOCKED_USER
from bot.owner_only import NOT_OWNER
from bot.speech.failover import ALL_SWITCHED_OFF
from bot.storage import OwnerState
from tests.loopback.discord import DiscordEmulator
from tests.unit.cogs.in_process import InProcessBot, running_in_process


async def say(running: InProcessBot, text: str, **kwargs: object):  # noqa: ANN201 - the emulator's interaction
    return await running.emu.invoke("speak", {"text": text}, **kwargs)  # type: ignore[arg-type]


async def test_a_member_who_is_not_the_owner_gets_one_line_and_nothing_changes(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    for command, options in (("owner stats", {}), ("owner block user", {"user": emu.other_user}),
                             ("owner engine disable", {"name": "scripted"})):
        reply = await (await emu.invoke(command, options, user=emu.user)).wait_message()
        assert reply.ephemeral and reply.content == NOT_OWNER, command
    assert await in_process_bot.store.owner_state() == OwnerState()


async def test_a_blocked_user_is_refused_everywhere_with_one_line_until_unblocked(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    blocked = await (await emu.invoke("owner block user", {"user": emu.user}, user=emu.owner)).wait_message()
    assert blocked.ephemeral and "Blocked" in blocked.content and blocked.allowed_mentions == {"parse": []}

    for command, options in (("speak", {"text": "let me speak"}), ("voice show", {}), ("help", {})):
        reply = await (await emu.invoke(command, options, user=emu.user)).wait_message()
        assert reply.ephemeral and reply.content == BLOCKED_USER, command
    other = await (await say(in_process_bot, "bob may", user=emu.other_user)).wait_message()
    assert not other.ephemeral
    assert [r.text for r in speech.requests] == ["bob may"]
    assert (await in_process_bot.store.owner_state()).blocked_users == {emu.user.id}

    listed = await (await emu.invoke("owner blocked", {}, user=emu.owner)).wait_message()
    assert str(emu.user.id) in listed.content
    await (await emu.invoke("owner unblock user", {"user": emu.user}, user=emu.owner)).wait_message()
    spoken = await (await say(in_process_bot, "back again", user=emu.user)).wait_message()
    assert not spoken.ephemeral and [r.text for r in speech.requests][-1] == "back again"


async def test_the_owner_cannot_block_themselves(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    reply = await (await emu.invoke("owner block user", {"user": emu.owner}, user=emu.owner)).wait_message()
    assert reply.ephemeral and "cannot be blocked" in reply.content
    assert await in_process_bot.store.owner_state() == OwnerState()


async def test_a_blocked_server_gets_one_line_but_the_owner_can_still_unblock_it(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    guild = str(emu.guild.id)
    blocked = await (await emu.invoke("owner block server", {"server": guild}, user=emu.owner)).wait_message()
    assert "Blocked **Loopback Guild**" in blocked.content

    for user in (emu.user, emu.owner):  # the owner too, for everything but /owner
        reply = await (await say(in_process_bot, "anyone here", user=user)).wait_message()
        assert reply.ephemeral and reply.content == BLOCKED_GUILD
    assert speech.requests == []

    unblocked = await (await emu.invoke("owner unblock server", {"server": guild}, user=emu.owner)).wait_message()
    assert unblocked.content == f"Unblocked server {guild}."
    assert not (await (await say(in_process_bot, "open again", user=emu.user)).wait_message()).ephemeral


async def test_a_server_id_that_is_not_one_is_refused_in_one_line(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    reply = await (await emu.invoke("owner block server", {"server": "general"}, user=emu.owner)).wait_message()
    assert reply.ephemeral and reply.content.startswith("That isn't a server ID")


async def test_the_kill_switch_stops_an_engine_until_it_is_switched_back_on(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    off = await (await emu.invoke("owner engine disable", {"name": "scripted"}, user=emu.owner)).wait_message()
    assert off.ephemeral and "No engine is left" in off.content
    assert (await in_process_bot.store.owner_state()).disabled_engines == {"scripted"}

    refused = await (await say(in_process_bot, "anything", user=emu.user)).wait_message()
    assert refused.ephemeral and refused.content == ALL_SWITCHED_OFF
    assert speech.requests == []

    unknown = await (await emu.invoke("owner engine disable", {"name": "nope"}, user=emu.owner)).wait_message()
    assert unknown.content.startswith("This bot has no engine called 'nope'")
    await (await emu.invoke("owner engine enable", {"name": "scripted"}, user=emu.owner)).wait_message()
    assert not (await (await say(in_process_bot, "on again", user=emu.user)).wait_message()).ephemeral
    assert [r.text for r in speech.requests] == ["on again"]


async def test_owner_stats_count_servers_requests_cache_errors_and_budgets(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    await in_process_bot.store.update_guild_settings(emu.guild.id, daily_char_budget=1000)
    await (await say(in_process_bot, "count me", user=emu.user)).wait_message()
    await (await say(in_process_bot, "count me", user=emu.user)).wait_message()  # the cache answers
    from bot.speech.errors import SpeechTimeoutError

    speech.errors.append(SpeechTimeoutError("The speech service took too long."))
    await (await say(in_process_bot, "this one fails", user=emu.user)).wait_message()
    await (await emu.invoke("owner block user", {"user": emu.other_user}, user=emu.owner)).wait_message()

    interaction = await emu.invoke("owner stats", {}, user=emu.owner)
    reply = await interaction.wait_message()
    assert reply.ephemeral
    text = reply.content
    assert "servers: 1   voice sessions: 0" in text
    assert "scripted 1 ok / 1 failed" in text
    assert "audio cache hit rate: 33% (1 of 3)" in text
    assert "errors by kind: timeout 1" in text
    assert "today (UTC): 8 characters in 1 request(s)" in text
    assert f"server {emu.guild.id}: 8/1000 today" in text
    assert "blocked: 1 user(s), 0 server(s)" in text
    assert "engines switched off: none" in text


async def test_a_blocked_users_message_is_not_spoken_on_request_either(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    target = await emu.chat.send(emu.user, emu.text_channel, "Hello world")
    await (await emu.invoke("owner block user", {"user": emu.user}, user=emu.owner)).wait_message()
    for menu in ("Speak this message", "Speak with their voice"):
        reply = await (await emu.invoke_menu(menu, target, user=emu.other_user)).wait_message(timeout=10)
        assert reply.ephemeral and reply.content == "I don't read that user's messages."
    assert speech.requests == []


async def test_help_locks_the_owner_commands_for_everyone_but_the_owner(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu

    async def owner_lines(user: object) -> list[str]:
        reply = await (await emu.invoke("help", {}, user=user)).wait_message()  # type: ignore[arg-type]
        text = "\n".join(embed.get("description", "") for embed in reply.embeds)
        return [line for line in text.splitlines() if line.startswith("`/owner ")]

    member, owner = await owner_lines(emu.user), await owner_lines(emu.owner)
    assert len(member) == len(owner) == 8
    assert all(line.endswith("🔒") for line in member) and not any(line.endswith("🔒") for line in owner)


async def test_owner_ids_replaces_the_application_owner(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    async with running_in_process(discord_emulator, tmp_path, OWNER_IDS=str(discord_emulator.user.id)) as running:
        emu = running.emu
        theirs = await (await emu.invoke("owner blocked", {}, user=emu.user)).wait_message()
        assert theirs.content.startswith("**Blocked users** (0):")
        app_owner = await (await emu.invoke("owner blocked", {}, user=emu.owner)).wait_message()
        assert app_owner.content == NOT_OWNER
