"""Building INTERACTION_CREATE payloads for registered slash commands, the way Discord's client does.

A missing key in a dispatched payload crashes discord.py's gateway loop (note 3.6), so this produces every
field ``Interaction._from_data`` and ``CommandTree`` read, and types each option value from the schema the
bot registered, so a test cannot invoke a command with input Discord would never deliver. A file option
takes ``(filename, data)``: the file is served by the emulator at the attachment's ``url``, as Discord's CDN
serves an uploaded file, so the bot downloads it over HTTP.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.loopback.discord_messages import Attachment, EmulatedInteraction, Message
from tests.loopback.discord_state import Channel, Guild, Role, User

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
MESSAGE_COMMAND = 3  # application command type of a message context menu
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3  # interaction type of a button press or a select menu choice
BUTTON, STRING_SELECT = 2, 3  # component types
GUILD_INSTALL = "0"


def find_command(emulator: DiscordEmulator, name: str, guild: Guild) -> dict[str, Any]:
    """Guild commands first, then global ones (discord.py's own lookup order, ``tree.py:1153-1170``)."""
    for scope in (guild.id, None):
        for command in emulator.commands.get(scope, []):
            if command["name"] == name and command.get("type", 1) == 1:
                return command
    registered = sorted(c["name"] for scope in emulator.commands.values() for c in scope)
    raise LookupError(f"/{name} is not registered (registered: {registered})")


#: Makes an uploaded file (filename, data) downloadable from the emulator; returns its attachment object.
Uploader = Callable[[str, bytes], dict[str, Any]]


def _value(option: dict[str, Any], value: Any, resolved: dict[str, dict[str, Any]], guild: Guild,
           upload: Uploader) -> Any:
    """The wire value for one option, checked against its declared type, choices and bounds."""
    kind, name = option["type"], option["name"]
    if kind in (USER, CHANNEL, ROLE, MENTIONABLE):
        return _resolve(kind, name, value, resolved, guild)
    if kind == ATTACHMENT:
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bytes)):
            raise TypeError(f"option {name!r} is a file: give (filename, data); got {value!r}")
        attachment = upload(*value)
        resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        return attachment["id"]
    expected = {STRING: str, INTEGER: int, BOOLEAN: bool, NUMBER: (int, float)}.get(kind)
    if expected is None:
        raise NotImplementedError(f"option {name!r}: type {kind} is not emulated yet")
    if not isinstance(value, expected) or (kind in (INTEGER, NUMBER) and isinstance(value, bool)):
        raise TypeError(f"option {name!r} is declared as type {kind}; got {value!r}")
    if kind == NUMBER:
        value = float(value)
    if (choices := option.get("choices")) and value not in [c["value"] for c in choices]:
        raise ValueError(f"option {name!r}: {value!r} is not one of its choices")
    low, high = option.get("min_value"), option.get("max_value")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"option {name!r}: {value!r} is outside [{low}, {high}]")
    if kind == STRING and not option.get("min_length", 0) <= len(value) <= option.get("max_length", 6000):
        raise ValueError(f"option {name!r}: length {len(value)} is outside its bounds")
    return value


def _resolve(kind: int, name: str, value: Any, resolved: dict[str, dict[str, Any]], guild: Guild) -> str:
    """Snowflake options travel as an id plus an entry in ``data.resolved``."""
    if isinstance(value, User) and kind in (USER, MENTIONABLE):
        resolved.setdefault("users", {})[str(value.id)] = value.to_payload()
        member = guild.member(value.id).to_payload()
        del member["user"]
        resolved.setdefault("members", {})[str(value.id)] = {**member, "permissions": str(
            guild.permissions_of(guild.member(value.id)))}
    elif isinstance(value, Role) and kind in (ROLE, MENTIONABLE):
        resolved.setdefault("roles", {})[str(value.id)] = value.to_payload()
    elif isinstance(value, Channel) and kind == CHANNEL:
        resolved.setdefault("channels", {})[str(value.id)] = {
            **value.to_payload(), "permissions": str((1 << 53) - 1)}
    else:
        raise TypeError(f"option {name!r} (type {kind}) needs a User, Role or Channel; got {value!r}")
    return str(value.id)


def _options(declared: list[dict[str, Any]], given: dict[str, Any], resolved: dict[str, dict[str, Any]],
             guild: Guild, upload: Uploader, path: str) -> list[dict[str, Any]]:
    by_name = {o["name"]: o for o in declared}
    if unknown := sorted(set(given) - set(by_name)):
        raise ValueError(f"/{path} has no option(s) {unknown}; declared: {sorted(by_name)}")
    if missing := sorted(o["name"] for o in declared if o.get("required") and o["name"] not in given):
        raise ValueError(f"/{path} requires option(s) {missing}")
    return [{"name": name, "type": by_name[name]["type"],
             "value": _value(by_name[name], value, resolved, guild, upload)} for name, value in given.items()]


def _data(command: dict[str, Any], words: list[str], given: dict[str, Any], guild: Guild,
          upload: Uploader) -> dict[str, Any]:
    """``data`` with options nested under the subcommand group / subcommand the words name."""
    resolved: dict[str, dict[str, Any]] = {}
    declared = command.get("options") or []
    chain: list[dict[str, Any]] = []
    for word in words[1:]:
        option = next((o for o in declared if o["name"] == word and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)),
                      None)
        if option is None:
            raise LookupError(f"/{' '.join(words)}: {word!r} is not a subcommand")
        chain.append(option)
        declared = option.get("options") or []
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in declared):
        raise LookupError(f"/{' '.join(words)} needs a subcommand")
    options = _options(declared, given, resolved, guild, upload, " ".join(words))
    for option in reversed(chain):
        options = [{"name": option["name"], "type": option["type"], "options": options}]
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1, "options": options}
    if resolved:
        data["resolved"] = resolved
    if "guild_id" in command:
        data["guild_id"] = command["guild_id"]
    return data


def build_interaction(emulator: DiscordEmulator, command_line: str, options: dict[str, Any], *, user: User,
                      guild: Guild, channel: Channel, attachment_size_limit: int, locale: str
                      ) -> EmulatedInteraction:
    words = command_line.split()
    command = find_command(emulator, words[0], guild)

    def upload(filename: str, data: bytes) -> dict[str, Any]:
        """Like a file the user attached in Discord's client: on the CDN (here: the emulator) before the bot
        hears of it."""
        attachment_id = emulator.snowflake()
        url = f"{emulator.http_base}/attachments/{channel.id}/{attachment_id}/{filename}"
        emulator.rest.uploads[attachment_id] = Attachment(attachment_id, filename, data, url)
        return emulator.rest.uploads[attachment_id].to_payload()

    data = _data(command, words, options, guild, upload)
    return _interaction(emulator, data, " ".join(words), user=user, guild=guild, channel=channel,
                        attachment_size_limit=attachment_size_limit, locale=locale)


def build_menu_interaction(emulator: DiscordEmulator, name: str, target: dict[str, Any], *, user: User, guild: Guild,
                           channel: Channel, attachment_size_limit: int, locale: str) -> EmulatedInteraction:
    """A message context menu ("Apps → name" on ``target``, a message payload) as Discord's client sends it: the
    target message resolved whole, its content included whatever the bot's intents (interactions are exempt
    from the Message Content rule)."""
    command = next((c for scope in (guild.id, None) for c in emulator.commands.get(scope, [])
                    if c["name"] == name and c.get("type") == MESSAGE_COMMAND), None)
    if command is None:
        raise LookupError(f"no message context menu named {name!r} is registered")
    data: dict[str, Any] = {"id": command["id"], "name": name, "type": MESSAGE_COMMAND, "target_id": target["id"],
                            "resolved": {"messages": {target["id"]: target}}}
    if "guild_id" in command:
        data["guild_id"] = command["guild_id"]
    return _interaction(emulator, data, name, user=user, guild=guild, channel=channel,
                        attachment_size_limit=attachment_size_limit, locale=locale)


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        if found := _find_component(component.get("components") or [], custom_id):
            return found
    return None


def build_component_interaction(emulator: DiscordEmulator, message: Message, custom_id: str,
                                values: list[str] | None, *, user: User, tampered: bool = False
                                ) -> EmulatedInteraction:
    """A MESSAGE_COMPONENT interaction for a click on a button or a choice in a string select of ``message``, as
    Discord's client sends it: only for a component the message has and that is enabled, with values among the
    select's options and as many as it allows, and an ephemeral message only by the user it was shown to (others
    never see it). ``tampered``: skip the last rule, as a modified client could (the bot must still refuse)."""
    component = _find_component(message.components, custom_id)
    if component is None:
        raise LookupError(f"message {message.id} has no component with custom_id {custom_id!r}")
    if component.get("disabled"):
        raise PermissionError(f"{custom_id!r} is disabled: Discord's client does not let anyone use it")
    invoker = message.interaction.user if message.interaction is not None else None
    if message.ephemeral and not tampered and (invoker is None or invoker.id != user.id):
        raise PermissionError("an ephemeral message is shown only to its invoker; nobody else can use it")
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
    if component["type"] == STRING_SELECT:
        offered = [option["value"] for option in component["options"]]
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if values is None or not set(values) <= set(offered) or not low <= len(values) <= high:
            raise ValueError(f"{custom_id!r} offers {offered} ({low} to {high} of them), not {values}")
        data["values"] = list(values)
    elif component["type"] == BUTTON:
        if values is not None:
            raise ValueError("a button carries no values")
    else:
        raise NotImplementedError(f"component type {component['type']}")
    guild = emulator.guild_by_id(message.guild_id) if message.guild_id is not None else emulator.guild
    channel = emulator.find_channel(message.channel_id) or emulator.text_channel
    interaction = _interaction(emulator, data, f"component {custom_id}", user=user, guild=guild, channel=channel,
                               attachment_size_limit=message.interaction.attachment_size_limit
                               if message.interaction else 10 * 1024 * 1024, locale="en-US", kind=MESSAGE_COMPONENT)
    interaction.payload["message"] = message.to_payload()
    interaction.component_message = message
    return interaction


def _interaction(emulator: DiscordEmulator, data: dict[str, Any], name: str, *, user: User, guild: Guild,
                 channel: Channel, attachment_size_limit: int, locale: str, kind: int = APPLICATION_COMMAND
                 ) -> EmulatedInteraction:
    member = guild.member(user.id)  # StopIteration: the user is not in that guild
    bot_member = guild.member(emulator.bot_user.id)
    interaction_id, token = emulator.snowflake(), "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(96)
    payload = {
        "id": str(interaction_id),
        "application_id": str(emulator.application_id),
        "type": kind,
        "token": token,
        "version": 1,
        "attachment_size_limit": attachment_size_limit,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
        "channel_id": str(channel.id),
        "channel": channel.to_payload(),
        "member": {**member.to_payload(), "permissions": str(guild.permissions_of(member))},
        "data": data,
        "app_permissions": str(guild.permissions_of(bot_member)),
        "locale": locale,
        "guild_locale": guild.preferred_locale,
        "entitlements": [],
        "authorizing_integration_owners": {GUILD_INSTALL: str(guild.id)},
        "context": 0,
    }
    return EmulatedInteraction(
        emulator=emulator, id=interaction_id, token=token, name=name, user=user, guild_id=guild.id,
        channel_id=channel.id, payload=payload, attachment_size_limit=attachment_size_limit)
