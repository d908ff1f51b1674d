"""The loopback Discord's world: users, guilds, roles, channels, members and voice states.

Plain dataclasses so tests can build and change the world before (or while) the bot runs; each knows how to
render the gateway payload discord.py expects (the minimal shapes in the discord-protocol note, sections
3.5 and 3.6). Snowflakes are ints here and strings on the wire.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
MIB = 1024 * 1024
TEXT_CHANNEL = 0
VOICE_CHANNEL = 2
STAGE_CHANNEL = 13

# Permission bits used by the default world (the full table is in Discord's docs).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
ATTACH_FILES = 1 << 15
CONNECT = 1 << 20
SPEAK = 1 << 21
MUTE_MEMBERS = 1 << 22  # on a stage: make oneself (or others) a speaker
MOVE_MEMBERS = 1 << 24
REQUEST_TO_SPEAK = 1 << 32  # on a stage: raise one's hand
USE_APPLICATION_COMMANDS = 1 << 31
ADMINISTRATOR = 1 << 3
SEND_VOICE_MESSAGES = 1 << 46
# Discord's defaults for @everyone in a new server include Send Voice Messages.
EVERYONE_PERMISSIONS = (VIEW_CHANNEL | SEND_MESSAGES | ATTACH_FILES | CONNECT | SPEAK | USE_APPLICATION_COMMANDS
                        | SEND_VOICE_MESSAGES)


class SnowflakeFactory:
    """Increasing, realistic snowflakes (timestamp in the high bits), unique within one emulator."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self, *, shard: tuple[int, int] | None = None) -> int:
        """A fresh snowflake; with ``shard=(id, count)`` one whose guild would be on that shard (its timestamp is
        moved up to ``count - 1`` ms into the future)."""
        timestamp = int(time.time() * 1000) - DISCORD_EPOCH_MS
        if shard is not None:
            shard_id, count = shard
            timestamp += (shard_id - timestamp) % count
        return (timestamp << 22) | (next(self._counter) & 0x3FFFFF)


def sum_bits(values: Iterable[int | str]) -> int:
    """OR of permission bit sets, as Discord sends them (strings) or as ints."""
    result = 0
    for value in values:
        result |= int(value)
    return result


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": None,
        }


@dataclass
class Role:
    id: int
    name: str
    permissions: int = 0
    position: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    type: int = TEXT_CHANNEL
    position: int = 0
    bitrate: int = 64000
    user_limit: int = 0
    permission_overwrites: list[dict[str, Any]] = field(default_factory=list)

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": self.permission_overwrites,
            "parent_id": None,
            "nsfw": False,
        }
        if self.type in (VOICE_CHANNEL, STAGE_CHANNEL):
            data.update(bitrate=self.bitrate, user_limit=self.user_limit, rtc_region=None)
            if self.type == STAGE_CHANNEL:
                data.update(topic=None)
        else:
            data.update(topic=None, last_message_id=None, rate_limit_per_user=0)
        return data


@dataclass
class Member:
    user: User
    roles: list[int] = field(default_factory=list)  # role ids, without @everyone (as on Discord)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)
    flags: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "user": self.user.to_payload(),
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "joined_at": self.joined_at,
            "flags": self.flags,
            "deaf": False,
            "mute": False,
            "pending": False,
        }


@dataclass
class VoiceState:
    user_id: int
    channel_id: int | None
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False
    #: On a stage: in the audience (nobody hears this user); everyone joins a stage that way.
    suppress: bool = False
    #: On a stage: when the user raised their hand (ISO 8601), or None.
    request_to_speak_timestamp: str | None = None

    def to_payload(self, guild_id: int) -> dict[str, Any]:
        return {
            "guild_id": str(guild_id),
            "channel_id": None if self.channel_id is None else str(self.channel_id),
            "user_id": str(self.user_id),
            "session_id": self.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self.self_deaf,
            "self_mute": self.self_mute,
            "self_video": False,
            "suppress": self.suppress,
            "request_to_speak_timestamp": self.request_to_speak_timestamp,
        }


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: list[Role] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    voice_states: list[VoiceState] = field(default_factory=list)
    premium_tier: int = 0
    preferred_locale: str = "en-US"
    joined_at: str = field(default_factory=iso_now)  # when the bot joined

    @property
    def upload_limit(self) -> int:
        """Per-file upload limit by boost tier (``guild.py:454-460``)."""
        return {2: 50 * MIB, 3: 100 * MIB}.get(self.premium_tier, 10 * MIB)

    @property
    def everyone(self) -> Role:
        return next(r for r in self.roles if r.id == self.id)

    def member(self, user_id: int) -> Member:
        return next(m for m in self.members if m.user.id == user_id)

    def channel(self, channel_id: int) -> Channel:
        return next(c for c in self.channels if c.id == channel_id)

    def channel_named(self, name: str) -> Channel:
        return next(c for c in self.channels if c.name == name)

    def permissions_of(self, member: Member) -> int:
        """Guild-level permissions (no channel overwrites); everything for the owner or an administrator."""
        value = self.everyone.permissions
        for role in self.roles:
            if role.id in member.roles:
                value |= role.permissions
        if member.user.id == self.owner_id or value & ADMINISTRATOR:
            return (1 << 53) - 1
        return value

    def channel_permissions(self, member: Member, channel: Channel) -> int:
        """Permissions in ``channel``: guild level, then the @everyone, role and member overwrites (in
        Discord's order; an administrator or the owner is not affected by overwrites)."""
        value = self.permissions_of(member)
        if member.user.id == self.owner_id or value & ADMINISTRATOR:
            return value
        overwrites = {int(o["id"]): o for o in channel.permission_overwrites}
        layers = [overwrites.get(self.id)]
        roles = [overwrites[r] for r in member.roles if r in overwrites]
        layers.append({"allow": sum_bits(o["allow"] for o in roles), "deny": sum_bits(o["deny"] for o in roles)})
        layers.append(overwrites.get(member.user.id))
        for layer in filter(None, layers):
            value = (value & ~int(layer["deny"])) | int(layer["allow"])
        return value

    def voice_members(self, channel: Channel) -> list[int]:
        """Ids of the users whose voice state is in ``channel``."""
        return [v.user_id for v in self.voice_states if v.channel_id == channel.id]

    def voice_state_of(self, user_id: int) -> VoiceState | None:
        return next((v for v in self.voice_states if v.user_id == user_id), None)

    def set_voice_state(self, state: VoiceState) -> None:
        """Replace the user's voice state; a state with ``channel_id=None`` removes it."""
        self.voice_states = [v for v in self.voice_states if v.user_id != state.user_id]
        if state.channel_id is not None:
            self.voice_states.append(state)

    def to_payload(self) -> dict[str, Any]:
        """GUILD_CREATE data (``guild.py:577-699`` reads these)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "unavailable": False,
            "large": False,
            "member_count": len(self.members),
            "joined_at": self.joined_at,
            "roles": [r.to_payload() for r in self.roles],
            "channels": [c.to_payload() for c in self.channels],
            "threads": [],
            "members": [m.to_payload() for m in self.members],
            "voice_states": [v.to_payload(self.id) for v in self.voice_states],
            "presences": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "premium_tier": self.premium_tier,
            "preferred_locale": self.preferred_locale,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


class WorldBuilder:
    """Builders that hand out fresh snowflakes, so tests can grow the world in one line."""

    def __init__(self, snowflake: SnowflakeFactory) -> None:
        self.snowflake = snowflake

    def user(self, username: str, *, bot: bool = False) -> User:
        return User(id=self.snowflake(), username=username, bot=bot, global_name=None if bot else username.title())

    def guild(self, name: str, *, owner: User, shard: tuple[int, int] | None = None) -> Guild:
        """A guild with only its @everyone role; ``shard=(id, count)`` picks an id on that shard."""
        guild_id = self.snowflake(shard=shard)
        everyone = Role(id=guild_id, name="@everyone", permissions=EVERYONE_PERMISSIONS)
        return Guild(id=guild_id, name=name, owner_id=owner.id, roles=[everyone])

    def role(self, guild: Guild, name: str, *, permissions: int = 0) -> Role:
        role = Role(id=self.snowflake(), name=name, permissions=permissions, position=len(guild.roles))
        guild.roles.append(role)
        return role

    def channel(self, guild: Guild, name: str, *, type: int = TEXT_CHANNEL, **kwargs: Any) -> Channel:
        channel = Channel(id=self.snowflake(), guild_id=guild.id, name=name, type=type,
                          position=len(guild.channels), **kwargs)
        guild.channels.append(channel)
        return channel

    def member(self, guild: Guild, user: User, *, roles: Sequence[Role] = ()) -> Member:
        member = Member(user=user, roles=[r.id for r in roles])
        guild.members.append(member)
        return member

    def join_voice(self, guild: Guild, user: User, channel: Channel) -> VoiceState:
        state = VoiceState(user_id=user.id, channel_id=channel.id, session_id=f"session-{user.id}",
                           suppress=channel.type == STAGE_CHANNEL)
        guild.set_voice_state(state)
        return state
