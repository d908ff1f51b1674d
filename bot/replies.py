"""Replying to interactions the same way everywhere: errors ephemeral, nobody pinged."""

from __future__ import annotations

import logging

import discord

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Send ``message`` only to the caller, whatever state the interaction is in.

    After a public ``defer()`` the first followup would replace the public "thinking" message and inherit
    its visibility, so the deferred response is deleted first and the error goes out as a separate
    ephemeral followup.
    """
    if not interaction.response.is_done():
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return
    if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("could not delete the deferred response (interaction=%s): %s", interaction.id, exc.status)
    await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
