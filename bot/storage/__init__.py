"""Persistent settings: guild settings, user preferences, dictionaries, mutes, usage counters and the voice
channels to rejoin after a restart.

No discord.py imports here: callers pass plain IDs. Message text and audio are never stored.
"""

from bot.storage.errors import DictionaryError, SchemaTooNewError, SettingsError, StorageError
from bot.storage.models import (
    BudgetUse,
    DictionaryEntry,
    EffectivePrefs,
    GuildSettings,
    GuildSettingsChanges,
    Mute,
    OwnerState,
    Usage,
    UserPrefs,
    UserPrefsChanges,
    VoiceRecord,
    parse_entries,
)
from bot.storage.store import Store

__all__ = [
    "BudgetUse",
    "DictionaryEntry",
    "DictionaryError",
    "EffectivePrefs",
    "GuildSettings",
    "GuildSettingsChanges",
    "Mute",
    "OwnerState",
    "SchemaTooNewError",
    "SettingsError",
    "StorageError",
    "Store",
    "Usage",
    "UserPrefs",
    "UserPrefsChanges",
    "VoiceRecord",
    "parse_entries",
]
