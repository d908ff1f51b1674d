"""Chat in the loopback Discord: members (or bots, or webhooks) post, edit and delete messages.

Each action dispatches the gateway event Discord would (MESSAGE_CREATE, MESSAGE_UPDATE, MESSAGE_DELETE,
MESSAGE_DELETE_BULK) with every field discord.py reads. The MESSAGE_CONTENT intent is enforced per session like
Discord does: without it, content, embeds, attachments, components and polls arrive empty unless the message
mentions the bot (or the bot wrote it).

    message = await emu.chat.send(emu.user, emu.voice_channel, "hello")     # text chat of a voice channel

IDENTIFY asking for MESSAGE_CONTENT while ``emu.application_flags`` has it off closes 4014, as Discord does.
    await emu.chat.edit(message, "hello again"); await emu.chat.delete(message)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.loopback.discord_state import Channel, Role, User, iso_now

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator
    from tests.loopback.discord_gateway import GatewaySession

MESSAGE_CONTENT_INTENT = 1 << 15
# Application flags: the Message Content intent is enabled in the developer portal (verified bot / under 100).
GATEWAY_MESSAGE_CONTENT, GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 18, 1 << 19
SUPPRESS_NOTIFICATIONS = 1 << 12  # the @silent flag
DEFAULT, REPLY = 0, 19
_PRIVILEGED_FIELDS = {"content": "", "embeds": [], "attachments": [], "components": []}


@dataclass
class ChatMessage:
    """A message as the emulator keeps it: the full payload, before any intent filtering."""

    payload: dict[str, Any]
    mentions_bot: bool
    author_is_bot_user: bool
    deleted: bool = False
    history: list[str] = field(default_factory=list)  # earlier contents, oldest first

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])

    @property
    def guild_id(self) -> int:
        return int(self.payload["guild_id"])


def content_intent_allowed(application_flags: int) -> bool:
    return bool(application_flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED))


class Chat:
    """Post, edit and delete messages as someone other than the bot."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.messages: dict[int, ChatMessage] = {}

    async def send(
        self,
        user: User,
        channel: Channel,
        content: str,
        *,
        flags: int = 0,
        webhook: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        mentions: list[User] | None = None,
        role_mentions: list[Role] | None = None,
        reply_to: ChatMessage | None = None,
        forward_of: ChatMessage | None = None,
    ) -> ChatMessage:
        """Post ``content`` in ``channel`` as ``user`` (a bot if ``user.bot``; a webhook named after ``user``
        with ``webhook=True``). ``attachments`` are attachment objects without ids (ids are added)."""
        guild = self.emu.guild_by_id(channel.guild_id)
        mentioned = list(mentions or [])
        payload: dict[str, Any] = {
            "id": str(self.emu.snowflake()),
            "channel_id": str(channel.id),
            "guild_id": str(guild.id),
            "author": user.to_payload(),
            "content": content,
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": "@everyone" in content or "@here" in content,
            "mentions": [self._mention(guild.id, u) for u in mentioned],
            "mention_roles": [str(role.id) for role in role_mentions or []],
            "attachments": [{**a, "id": str(self.emu.snowflake())} for a in attachments or []],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": REPLY if reply_to is not None else DEFAULT,
            "flags": flags,
        }
        if webhook:
            webhook_id = self.emu.snowflake()
            payload["webhook_id"] = str(webhook_id)
            payload["author"] = {**user.to_payload(), "id": str(webhook_id), "bot": True, "discriminator": "0000"}
        else:
            payload["member"] = _partial_member(guild.member(user.id).to_payload())
        if reply_to is not None:
            payload["message_reference"] = {"type": 0, "message_id": str(reply_to.id),
                                            "channel_id": str(reply_to.channel_id), "guild_id": str(guild.id)}
            payload["referenced_message"] = reply_to.payload
        if forward_of is not None:  # a forward: no text of its own, the original in a snapshot
            original = forward_of.payload
            payload["message_reference"] = {"type": 1, "message_id": str(forward_of.id),
                                            "channel_id": str(forward_of.channel_id), "guild_id": str(guild.id)}
            payload["message_snapshots"] = [{"message": {
                key: original[key] for key in ("type", "content", "embeds", "attachments", "timestamp",
                                               "edited_timestamp", "flags", "mentions", "mention_roles")
            }}]
        message = ChatMessage(payload, mentions_bot=any(u.id == self.emu.bot_user.id for u in mentioned),
                              author_is_bot_user=user.id == self.emu.bot_user.id)
        self.messages[message.id] = message
        await self._dispatch_message("MESSAGE_CREATE", message)
        return message

    async def edit(self, message: ChatMessage, content: str) -> ChatMessage:
        """Edit the text (MESSAGE_UPDATE carries the whole message, as Discord sends it today)."""
        message.history.append(message.payload["content"])
        message.payload["content"] = content
        message.payload["edited_timestamp"] = iso_now()
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def delete(self, message: ChatMessage) -> None:
        message.deleted = True
        await self._dispatch_to_all("MESSAGE_DELETE", {"id": str(message.id), "channel_id": str(message.channel_id),
                                                       "guild_id": str(message.guild_id)})

    async def bulk_delete(self, messages: list[ChatMessage]) -> None:
        """A moderator purges ``messages`` (one channel, as Discord requires)."""
        channels = {m.channel_id for m in messages}
        assert len(channels) == 1, "a bulk delete covers one channel"
        for message in messages:
            message.deleted = True
        await self._dispatch_to_all("MESSAGE_DELETE_BULK", {
            "ids": [str(m.id) for m in messages], "channel_id": str(messages[0].channel_id),
            "guild_id": str(messages[0].guild_id)})

    def _mention(self, guild_id: int, user: User) -> dict[str, Any]:
        member = self.emu.guild_by_id(guild_id).member(user.id)
        return {**user.to_payload(), "member": _partial_member(member.to_payload())}

    async def _dispatch_message(self, event: str, message: ChatMessage) -> None:
        for session in self.emu.gateway.sessions_for(message.guild_id):
            await session.dispatch(event, self._visible(session, message))
        await self.emu.changes.notify()

    async def _dispatch_to_all(self, event: str, data: dict[str, Any]) -> None:
        await self.emu.dispatch(event, data)
        await self.emu.changes.notify()

    @staticmethod
    def _visible(session: GatewaySession, message: ChatMessage) -> dict[str, Any]:
        """The payload as this session may see it (the MESSAGE_CONTENT rule)."""
        if session.intents & MESSAGE_CONTENT_INTENT or message.mentions_bot or message.author_is_bot_user:
            return dict(message.payload)
        hidden = {**message.payload, **_PRIVILEGED_FIELDS}
        hidden.pop("poll", None)
        return hidden


def _partial_member(member: dict[str, Any]) -> dict[str, Any]:
    """Members inside messages come without their user (it is the author or the mention itself)."""
    return {key: value for key, value in member.items() if key != "user"}
