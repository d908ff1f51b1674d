"""``/help`` in-process: generated from what the bot registered, private, with what the caller can't use locked."""

from __future__ import annotations

from typing import Any

from tests.unit.cogs.in_process import InProcessBot

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


def registered_paths(commands: list[dict[str, Any]]) -> set[str]:
    """Every invocable slash path Discord knows for the bot ("settings budget", "speak")."""

    def walk(prefix: str, options: list[dict[str, Any]]) -> set[str]:
        subs = [o for o in options if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        if not subs:
            return {prefix}
        return set().union(*(walk(f"{prefix} {o['name']}", o.get("options") or []) for o in subs))

    return set().union(*(walk(c["name"], c.get("options") or []) for c in commands if c.get("type", 1) == 1))


def help_text(reply: Any) -> str:
    return "\n".join(embed.get("description", "") for embed in reply.embeds)


async def test_help_lists_every_registered_command_once_and_only_to_the_caller(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    interaction = await emu.invoke("help", {})
    reply = await interaction.wait_message()
    assert reply.ephemeral and reply.allowed_mentions == {"parse": []}
    text = help_text(reply)
    for path in registered_paths(emu.commands[emu.guild.id]):
        assert text.count(f"`/{path}` — ") == 1, path
    for menu in (c for c in emu.commands[emu.guild.id] if c.get("type", 1) != 1):
        assert f"Apps → {menu['name']}" in text


async def test_what_a_member_cannot_use_is_locked_and_a_moderator_sees_no_lock(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    member = help_text(await (await emu.invoke("help", {}, user=emu.user)).wait_message())
    owner = help_text(await (await emu.invoke("help", {}, user=emu.owner)).wait_message())

    def line(text: str, path: str) -> str:
        return next(line for line in text.splitlines() if line.startswith(f"`/{path}` — "))

    assert line(member, "settings budget").endswith("🔒") and line(member, "mute").endswith("🔒")
    assert not line(member, "speak").endswith("🔒") and not line(member, "voice set").endswith("🔒")
    assert not [text for text in owner.splitlines() if text.endswith("🔒")] and "needs a permission" not in owner
