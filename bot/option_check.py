"""One place that checks every option of every slash command against what the command declares, before
discord.py parses the options or anything runs.

Discord's client only sends what a command declares (choices, ranges, types), but the interaction payload comes
over the network and nothing in discord.py re-checks it: a ``format`` of ``mp4`` reached the cog, and a number
option carrying a string made discord.py fail before any error handler, so the member got no reply at all.
Here a value that does not match the declaration is refused with one short line naming the option.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import discord
from discord import AppCommandOptionType as OptionType
from discord import app_commands

_SNOWFLAKE = re.compile(r"[0-9]{1,20}")
#: Discord's longest string option value (a declared max_length can only be lower).
MAX_STRING_OPTION = 6000
_SUBCOMMANDS = (OptionType.subcommand.value, OptionType.subcommand_group.value)
_OBJECT_TYPES = {OptionType.user, OptionType.channel, OptionType.role, OptionType.mentionable,
                 OptionType.attachment}


class InvalidOption(app_commands.CheckFailure):
    """An option value the command does not declare; the message names the option and is shown to the member."""

    def __init__(self, option: str) -> None:
        self.option = option[:32]
        super().__init__(f"That option isn't valid: {self.option}.")


def check_options(tree: app_commands.CommandTree[Any], interaction: discord.Interaction[Any]) -> None:
    """Raise :class:`InvalidOption` unless every option of this slash-command interaction is declared by the
    command and has a value of the declared type, among its choices and within its range and length."""
    if interaction.type is not discord.InteractionType.application_command:
        return  # autocomplete sends half-typed values on purpose; components carry no options
    data: Mapping[str, Any] = interaction.data or {}
    if data.get("type", 1) != 1:
        return  # context menus carry a target, not options
    guild = discord.Object(int(data["guild_id"])) if data.get("guild_id") else None
    name = data.get("name")
    command = tree.get_command(name, guild=guild) if isinstance(name, str) else None
    if command is None and guild is not None:
        command = tree.get_command(name)  # type: ignore[arg-type]  # a str by the check above
    if command is None:
        return  # discord.py answers unknown commands itself (CommandNotFound)
    options = data.get("options") or []
    while isinstance(command, app_commands.Group):
        given = options[0] if isinstance(options, list) and len(options) == 1 else None
        if not isinstance(given, dict) or given.get("type") not in _SUBCOMMANDS:
            raise InvalidOption(command.name)
        sub = command.get_command(str(given.get("name")))
        if sub is None:
            raise InvalidOption(str(given.get("name")))
        command, options = sub, given.get("options") or []
    if not isinstance(options, list):
        raise InvalidOption(command.name)
    _check_command(command, options, data.get("resolved") or {})


def _check_command(command: app_commands.Command[Any, ..., Any], options: Sequence[Any],
                   resolved: Mapping[str, Any]) -> None:
    declared = {parameter.display_name: parameter for parameter in command.parameters}
    seen: set[str] = set()
    for option in options:
        if not isinstance(option, dict) or option.get("name") not in declared or option["name"] in seen:
            raise InvalidOption(str(option.get("name") if isinstance(option, dict) else command.name))
        parameter = declared[option["name"]]
        seen.add(parameter.display_name)
        if option.get("type") != parameter.type.value or not _valid(parameter, option.get("value"), resolved):
            raise InvalidOption(parameter.display_name)
    for parameter in command.parameters:
        if parameter.required and parameter.display_name not in seen:
            raise InvalidOption(parameter.display_name)


def _valid(parameter: app_commands.Parameter, value: Any, resolved: Mapping[str, Any]) -> bool:
    kind = parameter.type
    if kind is OptionType.string:
        ok = isinstance(value, str) and len(value) <= MAX_STRING_OPTION and _within(len(value), parameter)
    elif kind is OptionType.integer:
        ok = isinstance(value, int) and not isinstance(value, bool) and _within(value, parameter)
    elif kind is OptionType.number:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and _within(value, parameter))
    elif kind is OptionType.boolean:
        ok = isinstance(value, bool)
    elif kind in _OBJECT_TYPES:
        ok = isinstance(value, str) and bool(_SNOWFLAKE.fullmatch(value)) and _resolved(kind, value, resolved)
    else:
        ok = False
    if ok and parameter.choices:
        ok = any(value == choice.value for choice in parameter.choices)
    return ok


def _within(value: float, parameter: app_commands.Parameter) -> bool:
    """Range for numbers, length for strings (discord.py keeps both in min_value/max_value)."""
    low, high = parameter.min_value, parameter.max_value
    return (low is None or value >= low) and (high is None or value <= high)


def _resolved(kind: OptionType, snowflake: str, resolved: Mapping[str, Any]) -> bool:
    """An object option's id must be among the objects Discord resolved for the interaction."""
    sections = {
        OptionType.user: ("users", "members"),
        OptionType.channel: ("channels",),
        OptionType.role: ("roles",),
        OptionType.mentionable: ("users", "members", "roles"),
        OptionType.attachment: ("attachments",),
    }[kind]
    return any(isinstance(resolved.get(section), dict) and snowflake in resolved[section] for section in sections)
