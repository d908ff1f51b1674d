"""Moderator commands: the server's pronunciation ``/dictionary``, and ``/mute`` / ``/unmute`` for members.

Like ``/settings``, hidden from members without Manage Server and checked again when run. Entries are checked
by ``bot.storage`` (which uses ``bot.text``'s rules, slow regular expressions included); an import is checked
whole before anything is written, and then replaces the dictionary in one transaction.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.interactions import NO_MENTIONS, reply_ephemeral, tr
from bot.permissions import require_moderator
from bot.storage import DictionaryEntry, Store, parse_entries

if TYPE_CHECKING:
    from bot.app import SpeechBot

#: Largest dictionary file accepted by ``/dictionary import`` (a full dictionary is far smaller).
MAX_IMPORT_BYTES = 256 * 1024
#: ``/dictionary list`` stays within one message; the rest is in ``/dictionary export``.
LIST_CHARS = 1800
MANAGE_GUILD = discord.Permissions(manage_guild=True)


def entries_json(entries: tuple[DictionaryEntry, ...]) -> bytes:
    """The export format, which ``/dictionary import`` reads back (authors are not exported)."""
    records = [{"pattern": e.pattern, "replacement": e.replacement, "is_regex": e.is_regex} for e in entries]
    return json.dumps(records, ensure_ascii=False, indent=2).encode()


def read_entries_json(data: bytes, *, created_by: int) -> list[DictionaryEntry]:
    """Every entry of an uploaded file, or one :class:`UserFacingError` saying what is wrong with it."""
    try:
        records = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserFacingError("The file is not valid JSON ({error}). Nothing was changed.", error=str(exc)) from None
    if not isinstance(records, list):
        raise UserFacingError(
            "The file must hold a JSON list of entries like {example}. Nothing was changed.",
            example='{"pattern": "lol", "replacement": "laughing"}',
        )
    return parse_entries(records, created_by=created_by)


def _entry_line(entry: DictionaryEntry) -> str:
    kind = " (regex)" if entry.is_regex else ""
    return f"• `{entry.pattern.replace('`', 'ˋ')}`{kind} → {discord.utils.escape_markdown(entry.replacement)}"


class ModerationCog(commands.Cog):
    dictionary = app_commands.Group(
        name="dictionary",
        description="How words are pronounced in this server (moderators).",
        guild_only=True,
        default_permissions=MANAGE_GUILD,
    )

    def __init__(self, store: Store) -> None:
        self.store = store

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """Moderators only (``discord.py`` types this for any client; every interaction here is the bot's)."""
        return await require_moderator(interaction)

    @dictionary.command(name="add", description="Say a replacement wherever a word or pattern appears.")
    @app_commands.describe(
        pattern="The word to replace (or a regular expression, with regex).",
        replacement="What to say instead.",
        regex="Treat the pattern as a regular expression.",
    )
    async def add(
        self,
        interaction: discord.Interaction[SpeechBot],
        pattern: app_commands.Range[str, 1, 100],
        replacement: app_commands.Range[str, 1, 200],
        regex: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        entry = await self.store.add_entry(
            interaction.guild_id, pattern, replacement, is_regex=regex, created_by=interaction.user.id
        )
        await reply_ephemeral(interaction, tr(interaction, "Dictionary entry saved:") + "\n" + _entry_line(entry))

    @dictionary.command(name="remove", description="Remove a dictionary entry.")
    @app_commands.describe(pattern="The entry's pattern, exactly.")
    async def remove(self, interaction: discord.Interaction[SpeechBot], pattern: str) -> None:
        assert interaction.guild_id is not None
        if not await self.store.remove_entry(interaction.guild_id, pattern):
            raise UserFacingError("There is no entry with the pattern {pattern}.", pattern=repr(pattern[:100]))
        quoted = "`" + pattern.replace("`", "ˋ") + "`"
        await reply_ephemeral(interaction, tr(interaction, "Removed the entry for {pattern}.", pattern=quoted))

    @remove.autocomplete("pattern")
    async def _patterns(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        assert interaction.guild_id is not None
        entries = await self.store.list_entries(interaction.guild_id)
        return [app_commands.Choice(name=e.pattern, value=e.pattern) for e in entries if current in e.pattern][:25]

    @dictionary.command(name="list", description="Show the dictionary.")
    async def list_(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild_id is not None
        entries = await self.store.list_entries(interaction.guild_id)
        if not entries:
            await reply_ephemeral(interaction,
                                  tr(interaction, "The dictionary is empty. Add entries with /dictionary add."))
            return
        lines: list[str] = []
        length = 0
        for entry in entries:
            line = _entry_line(entry)
            if length + len(line) > LIST_CHARS:
                lines.append(f"… and {len(entries) - len(lines)} more: /dictionary export has them all.")
                break
            lines.append(line)
            length += len(line) + 1
        title = tr(interaction, "Dictionary ({count} entries, applied in this order):", count=len(entries))
        title = f"**{title}**"
        await reply_ephemeral(interaction, title + "\n" + "\n".join(lines))

    @dictionary.command(name="export", description="Download the dictionary as a JSON file.")
    async def export(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild_id is not None
        entries = await self.store.list_entries(interaction.guild_id)
        file = discord.File(io.BytesIO(entries_json(entries)), filename="dictionary.json")
        await interaction.response.send_message(
            tr(interaction, "The dictionary: {count} entries.", count=len(entries)), file=file, ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @dictionary.command(name="import", description="Replace the whole dictionary with a JSON file (from export).")
    @app_commands.describe(file="A JSON list of {pattern, replacement, is_regex} entries.")
    async def import_(self, interaction: discord.Interaction[SpeechBot], file: discord.Attachment) -> None:
        assert interaction.guild_id is not None
        if file.size > MAX_IMPORT_BYTES:
            raise UserFacingError(
                "The file is too big ({size} bytes; at most {limit}).", size=file.size, limit=MAX_IMPORT_BYTES
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            data = await file.read()
        except discord.HTTPException as exc:
            raise UserFacingError(
                "I could not download the file (HTTP {status}); try again.", status=str(exc.status)
            ) from None
        entries = read_entries_json(data, created_by=interaction.user.id)
        previous = len(await self.store.list_entries(interaction.guild_id))
        count = await self.store.replace_entries(interaction.guild_id, entries)
        await interaction.followup.send(
            tr(interaction, "Imported {count} entries; they replace the {previous} there were before.", count=count,
               previous=previous),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="mute", description="Stop reading a member aloud; they cannot use /speak either.")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def mute(self, interaction: discord.Interaction[SpeechBot], member: discord.Member) -> None:
        assert interaction.guild_id is not None
        if await self.store.mute(interaction.guild_id, member.id, by=interaction.user.id):
            await reply_ephemeral(interaction, tr(interaction, "Muted {member}: not read aloud, and /speak refuses "
                                                  "them here.", member=member.mention))
        else:
            await reply_ephemeral(interaction, tr(interaction, "{member} was already muted; nothing changed.",
                                                  member=member.mention))

    @app_commands.command(name="unmute", description="Let a muted member be read aloud and use /speak again.")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def unmute(self, interaction: discord.Interaction[SpeechBot], member: discord.Member) -> None:
        assert interaction.guild_id is not None
        if await self.store.unmute(interaction.guild_id, member.id):
            await reply_ephemeral(interaction, tr(interaction, "Unmuted {member}: read aloud and /speak work for them "
                                                  "again.", member=member.mention))
        else:
            await reply_ephemeral(interaction, tr(interaction, "{member} was not muted; nothing changed.",
                                                  member=member.mention))


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(ModerationCog(bot.services.store))
