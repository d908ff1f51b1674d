"""``/help``: every command, generated from the command tree (``bot.command_help``), only for the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.command_help import help_embeds
from bot.interactions import NO_MENTIONS, language_for
from bot.owner_only import is_owner

if TYPE_CHECKING:
    from bot.app import SpeechBot


class HelpCog(commands.Cog):
    def __init__(self, bot: SpeechBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="Every command, in one line each; 🔒 marks what you can't use here.")
    async def help(self, interaction: discord.Interaction[SpeechBot]) -> None:
        guild = discord.Object(interaction.guild_id) if interaction.guild_id is not None else None
        embeds = help_embeds(self.bot.tree, guild=guild, permissions=interaction.permissions,
                             owner=await is_owner(interaction), language=language_for(interaction))
        await interaction.response.send_message(embeds=embeds, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(HelpCog(bot))
