"""``/help``'s text, generated from the command tree itself (never a hand-kept list): every slash command,
subcommand and context menu with one line, and a lock on what the caller may not use here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import discord
from discord import app_commands

from bot.i18n import ENGLISH, N_, surface_text, translate
from bot.owner_only import is_owner_only

LOCKED = "🔒"
#: Discord's limit for an embed's description.
_DESCRIPTION_LIMIT = 4096
#: A context menu's line, by where Discord offers it ("Apps" is Discord's own name for that submenu).
_MENU_LINES = {
    discord.AppCommandType.message: N_("**Apps → {name}** (on a message)"),
    discord.AppCommandType.user: N_("**Apps → {name}** (on a member)"),
}


def help_embeds(
    tree: app_commands.CommandTree[Any], *, guild: discord.abc.Snowflake | None, permissions: discord.Permissions,
    owner: bool = False, language: str = ENGLISH,
) -> list[discord.Embed]:
    """The help as embeds (one unless the commands outgrow an embed's description); ``owner``: the caller is the
    bot's owner (the ``/owner`` commands are locked for anyone else). In ``language``: the descriptions are the
    command surface's own translations (what the member's Discord client shows), the names stay as registered."""
    lines = list(_lines(tree, guild, permissions, owner, language))
    if any(line.endswith(f" {LOCKED}") for line in lines):
        lines.append("\n" + translate(language, "{lock} needs a permission you don't have here (or works only in a "
                                       "server, or is for the bot's owner).", lock=LOCKED))
    embeds: list[discord.Embed] = []
    chunk: list[str] = []
    for line in lines:
        if sum(len(part) + 1 for part in chunk) + len(line) > _DESCRIPTION_LIMIT:
            embeds.append(discord.Embed(description="\n".join(chunk)))
            chunk = []
        chunk.append(line)
    embeds.append(discord.Embed(description="\n".join(chunk)))
    embeds[0].title = translate(language, "What I can do")
    return embeds


def _lines(tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None,
           permissions: discord.Permissions, owner: bool, language: str) -> Iterator[str]:
    """Slash commands alphabetically (guild-specific ones win over global ones of the same name), then menus."""
    slash: dict[str, app_commands.Command[Any, ..., Any] | app_commands.Group] = {}
    menus: dict[tuple[str, discord.AppCommandType], app_commands.ContextMenu] = {}
    scopes = [None] if guild is None else [None, guild]
    for scope in scopes:
        for command in tree.get_commands(guild=scope):
            if isinstance(command, app_commands.ContextMenu):
                menus[(command.name, command.type)] = command
            else:
                slash[command.name] = command
    for name in sorted(slash):
        yield from _slash_lines(slash[name], guild, permissions, owner, language)
    for (name, kind), menu in sorted(menus.items(), key=lambda item: item[0][0]):
        lock = _lock(menu.default_permissions, menu.guild_only, guild, permissions)
        shown = surface_text(language, "menu", name) or name
        line = _MENU_LINES.get(kind, _MENU_LINES[discord.AppCommandType.message])
        yield translate(language, line, name=shown) + lock


def _slash_lines(command: app_commands.Command[Any, ..., Any] | app_commands.Group,
                 guild: discord.abc.Snowflake | None, permissions: discord.Permissions, owner: bool, language: str,
                 root: app_commands.Command[Any, ..., Any] | app_commands.Group | None = None) -> Iterator[str]:
    root = root or command
    if isinstance(command, app_commands.Group):
        for sub in sorted(command.commands, key=lambda c: c.name):
            yield from _slash_lines(sub, guild, permissions, owner, language, root)
        return
    lock = f" {LOCKED}" if is_owner_only(root) and not owner else \
        _lock(root.default_permissions, root.guild_only, guild, permissions)
    description = surface_text(language, "description", command.description) or command.description
    yield f"`/{command.qualified_name}` — {description}{lock}"


def _lock(needed: discord.Permissions | None, guild_only: bool, guild: discord.abc.Snowflake | None,
          permissions: discord.Permissions) -> str:
    if guild_only and guild is None:
        return f" {LOCKED}"
    if needed is not None and guild is not None and not permissions.is_superset(needed):
        return f" {LOCKED}"
    return ""
