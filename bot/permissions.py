"""Who may change a server's settings, checked when a command runs.

Discord's default member permissions only hide commands, and a server can show them to anyone in its
integration settings, so every moderator command checks again here: Manage Server, or the server's configured
moderator role, or the bot's owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.i18n import N_, Text

if TYPE_CHECKING:
    from bot.app import SpeechBot


class NotModerator(app_commands.CheckFailure):
    """Refusal shown to the caller in their language (``SpeechTree.on_error`` renders ``text``)."""

    def __init__(self, text: Text) -> None:
        self.text = text
        super().__init__(str(text))


def is_moderator(*, manage_guild: bool, role_ids: Iterable[int], moderator_role_id: int | None) -> bool:
    """Manage Server, or holding the server's moderator role."""
    return manage_guild or (moderator_role_id is not None and moderator_role_id in set(role_ids))


async def caller_is_moderator(interaction: discord.Interaction[SpeechBot]) -> bool:
    """Whether the caller moderates this server (False outside servers)."""
    member = interaction.user
    if interaction.guild_id is None or not isinstance(member, discord.Member):
        return False
    settings = await interaction.client.services.store.get_guild_settings(interaction.guild_id)
    return is_moderator(
        manage_guild=member.guild_permissions.manage_guild,
        role_ids=(role.id for role in member.roles),
        moderator_role_id=settings.moderator_role_id,
    ) or await interaction.client.is_owner(member)


async def require_moderator(interaction: discord.Interaction[SpeechBot]) -> bool:
    """An ``interaction_check``: True for a moderator, :class:`NotModerator` with a clear reason otherwise."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if await caller_is_moderator(interaction):
        return True
    settings = await interaction.client.services.store.get_guild_settings(interaction.guild_id)
    if settings.moderator_role_id is not None:
        raise NotModerator(Text(N_("Only moderators can do this: you need the Manage Server permission or the {role} "
                                   "role."), {"role": f"<@&{settings.moderator_role_id}>"}))
    raise NotModerator(Text(N_("Only moderators can do this: you need the Manage Server permission.")))
