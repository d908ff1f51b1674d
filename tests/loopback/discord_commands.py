"""What Discord checks in registered application commands beyond the OpenAPI schema's lengths: its naming rules
("Application Command Naming" in Discord's docs) and its locales.

- A CHAT_INPUT command's name, and the names of its subcommands, groups and options, match
  ``^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$`` and are lowercase where the script has case; so do their
  ``name_localizations`` values. User and message commands (context menus) may use spaces and capitals.
- Every key of ``name_localizations`` and ``description_localizations`` (commands, options, choices) is one of
  Discord's locales (the spec's ``AvailableLocalesEnum``).
- Names are unique among siblings, in the default language and in every locale (a localized name counts where
  it is given, the default name elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import regex

NAME = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")
CHAT_INPUT = 1
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


def discord_locales(spec_doc: Mapping[str, Any]) -> frozenset[str]:
    enum = spec_doc["components"]["schemas"]["AvailableLocalesEnum"]
    return frozenset(member["const"] for member in enum["oneOf"])


def command_errors(commands: Sequence[Mapping[str, Any]], locales: frozenset[str]) -> list[str]:
    """Every way ``commands`` (a bulk overwrite body) breaks Discord's rules, as ``path: problem`` lines."""
    errors: list[str] = []
    for kind in {command.get("type") or CHAT_INPUT for command in commands}:
        same_kind = [c for c in commands if (c.get("type") or CHAT_INPUT) == kind]
        errors += _unique(same_kind, locales, "commands")
    for index, command in enumerate(commands):
        chat = (command.get("type") or CHAT_INPUT) == CHAT_INPUT
        errors += _entity(command, f"commands[{index}]", locales, strict_name=chat)
        if chat:
            errors += _options(command.get("options") or [], f"commands[{index}]", locales)
    return errors


def _options(options: Sequence[Mapping[str, Any]], path: str, locales: frozenset[str]) -> list[str]:
    errors = _unique(options, locales, f"{path}.options")
    for index, option in enumerate(options):
        where = f"{path}.options[{index}]"
        errors += _entity(option, where, locales, strict_name=True)
        for number, choice in enumerate(option.get("choices") or []):
            errors += _localizations(choice.get("name_localizations"), f"{where}.choices[{number}]", locales)
        if option.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
            errors += _options(option.get("options") or [], where, locales)
    return errors


def _entity(entity: Mapping[str, Any], path: str, locales: frozenset[str], *, strict_name: bool) -> list[str]:
    errors = _localizations(entity.get("name_localizations"), path, locales)
    errors += _localizations(entity.get("description_localizations"), path, locales, "description_localizations")
    if strict_name:
        names = [("name", entity.get("name", ""))]
        names += [(f"name_localizations.{k}", v) for k, v in (entity.get("name_localizations") or {}).items()]
        errors += [f"{path}.{field}: {value!r} is not a valid command name (lowercase, no spaces, 1-32)"
                   for field, value in names if not (isinstance(value, str) and NAME.match(value) and
                                                     value == value.lower())]
    return errors


def _localizations(values: Mapping[str, Any] | None, path: str, locales: frozenset[str],
                   field: str = "name_localizations") -> list[str]:
    return [f"{path}.{field}: {key!r} is not a Discord locale" for key in (values or {}) if key not in locales]


def _unique(siblings: Iterable[Mapping[str, Any]], locales: frozenset[str], path: str) -> list[str]:
    siblings = list(siblings)
    errors = []
    for locale in (None, *sorted(locales)):
        seen: set[str] = set()
        for sibling in siblings:
            localized = (sibling.get("name_localizations") or {}).get(locale) if locale else None
            name = localized or sibling.get("name", "")
            if name in seen:
                errors.append(f"{path}: the name {name!r} is used twice" + (f" in {locale}" if locale else ""))
            seen.add(name)
    return errors
