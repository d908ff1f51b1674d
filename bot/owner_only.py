"""Commands for the bot's owner alone (``/owner``): how they are marked and checked.

Who the owner is: ``OWNER_IDS`` when set, else the application's owner or its team members as Discord's
``GET /oauth2/applications/@me`` says (discord.py's ``Bot.is_owner``, fetched once and kept).
The commands are global, so the owner has them in every server and in a DM with the bot; anyone else who runs
one gets one ephemeral line, and ``/help`` marks them 🔒 for them. They skip the blocklists (an owner can always
unblock).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.i18n import N_
from bot.interactions import Refused

#: The key in a top-level command's ``extras`` that marks it (and its subcommands) owner-only.
OWNER_ONLY = "owner_only"
NOT_OWNER = N_("Only the bot's owner can use this.")

AnyCommand = app_commands.Command[Any, ..., Any] | app_commands.Group | app_commands.ContextMenu


def is_owner_only(command: AnyCommand) -> bool:
    root = command.root_parent if isinstance(command, app_commands.Command | app_commands.Group) else None
    return bool((root or command).extras.get(OWNER_ONLY))


async def is_owner(interaction: discord.Interaction) -> bool:
    client = interaction.client
    return isinstance(client, commands.bot.BotBase) and await client.is_owner(interaction.user)


async def ensure_owner(interaction: discord.Interaction) -> bool:
    """For an owner-only group's ``interaction_check``: True, or the one line for anyone else."""
    if not await is_owner(interaction):
        raise Refused(UserFacingError(NOT_OWNER))
    return True
