"""Storage errors: user-facing ones for bad values, plain ones for an unusable database."""

from __future__ import annotations

from bot.errors import UserFacingError

# One class for every dictionary refusal, stored or applied: bot.text, which applies the entries, owns the
# rules of what a usable entry is (including the checks against slow regular expressions).
from bot.text.dictionary import DictionaryError

__all__ = ["DictionaryError", "SchemaTooNewError", "SettingsError", "StorageError"]


class SettingsError(UserFacingError):
    """A setting or preference value is not allowed; the message names it and says what is allowed."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting




class StorageError(Exception):
    """The database cannot be used (unreachable, locked, broken); the message is for the owner's logs."""


class SchemaTooNewError(StorageError):
    """The database was migrated by a newer speechbot; starting would risk misreading it."""

    def __init__(self, database_version: int, code_version: int) -> None:
        super().__init__(
            f"The database is at schema version {database_version}, but this speechbot only knows versions up to "
            f"{code_version}. Upgrade speechbot (or restore a backup taken before the upgrade) and start again."
        )
        self.database_version = database_version
        self.code_version = code_version
