"""The command surface in the catalogues' languages: discord.py's translator, fed by ``bot.i18n``.

discord.py asks for every name, description and choice of every command when it syncs them and sends what
this returns as ``name_localizations``/``description_localizations``; Discord shows each member the ones of
their client's language. Spanish (Spain) also serves Latin American Spanish, which has no catalogue of its own.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.i18n import LANGUAGES, surface_text

#: Where a string sits → its message context in the catalogues.
CONTEXTS: dict[Where, str] = {
    Where.command_name: "name",
    Where.group_name: "name",
    Where.parameter_name: "name",
    Where.command_description: "description",
    Where.group_description: "description",
    Where.parameter_description: "description",
    Where.choice_name: "choice",
}
#: Discord locales that read a catalogue of another code.
ALSO: dict[str, str] = {"es-419": "es-ES"}


def context_of(context: app_commands.TranslationContextTypes) -> str:
    """The message context of a command string; a context menu's name (spaces and capitals allowed) is "menu"."""
    if isinstance(context.data, app_commands.ContextMenu):
        return "menu"
    return CONTEXTS.get(context.location, "menu")


def catalogue_language(locale: discord.Locale) -> str | None:
    """The catalogue a Discord locale reads, or None (English and languages without a catalogue)."""
    code = ALSO.get(locale.value, locale.value)
    return code if code in LANGUAGES else None


class CatalogueTranslator(app_commands.Translator):
    """Looks every command string up in the catalogue of the locale asked for; None leaves it in English."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        language = catalogue_language(locale)
        if language is None:
            return None
        return surface_text(language, context_of(context), string.message)
