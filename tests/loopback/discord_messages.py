"""What the bot sent: messages with their uploaded files, interactions and their responses.

The emulator records these so tests assert on what a Discord user would see (content, flags, file bytes,
allowed mentions), and renders them back as the message objects discord.py parses (note section 4.4).
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.loopback.discord_state import User, iso_now

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator

EPHEMERAL = 1 << 6
LOADING = 1 << 7
CHAT_INPUT_COMMAND_MESSAGE = 20
DEFAULT_MESSAGE = 0


class Changes:
    """Lets tests await a condition on state that the REST and gateway handlers change.

    Handlers ``notify()`` after every change; waiters also re-check every 50 ms so that predicates over
    state outside the emulator (the bot's own) work too.
    """

    POLL = 0.05

    def __init__(self) -> None:
        self._condition = asyncio.Condition()

    async def notify(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"loopback Discord: no {what} within {timeout} s")
            async with self._condition:
                try:
                    await asyncio.wait_for(self._condition.wait(), min(remaining, self.POLL))
                except TimeoutError:
                    pass
        return result


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    url: str
    description: str | None = None
    duration_secs: float | None = None  # voice messages
    waveform: str | None = None  # voice messages: base64 amplitudes

    @property
    def content_type(self) -> str:
        """Guessed from the filename, as Discord does: discord.py labels every part application/octet-stream."""
        if self.filename.endswith((".opus", ".ogg")):
            return "audio/ogg"
        return mimetypes.guess_type(self.filename)[0] or "application/octet-stream"

    def to_payload(self) -> dict[str, Any]:
        data = {"id": str(self.id), "filename": self.filename, "size": len(self.data), "url": self.url,
                "proxy_url": self.url, "content_type": self.content_type}
        if self.description is not None:
            data["description"] = self.description
        if self.duration_secs is not None:
            data.update(duration_secs=self.duration_secs, waveform=self.waveform, flags=0)
        return data


@dataclass
class Message:
    """A message as the bot left it; mutated in place by edits (``edits`` counts them)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    flags: int = 0
    tts: bool = False
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    interaction: EmulatedInteraction | None = None
    webhook_id: int | None = None
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    edits: int = 0
    deleted: bool = False
    #: When a user last saw it change (``time.monotonic``): sent, or edited. See ``DiscordEmulator._component``.
    shown_at: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response's "is thinking..." placeholder, not yet filled in."""
        return bool(self.flags & LOADING)

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": CHAT_INPUT_COMMAND_MESSAGE if self.interaction else DEFAULT_MESSAGE,
            "content": self.content,
            "author": self.author.to_payload(),
            "attachments": [a.to_payload() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": self.tts,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.interaction is not None:
            data["interaction_metadata"] = self.interaction.metadata()
        return data


@dataclass
class InitialResponse:
    """The interaction callback: its type (4 message, 5 deferred, ...) and ``data``."""

    type: int
    data: dict[str, Any]
    elapsed: float  # seconds between dispatching INTERACTION_CREATE and receiving the callback

    @property
    def ephemeral(self) -> bool:
        return bool((self.data.get("flags") or 0) & EPHEMERAL)


@dataclass
class EmulatedInteraction:
    """One INTERACTION_CREATE the test dispatched, and everything the bot answered to it."""

    emulator: DiscordEmulator = field(repr=False)
    id: int
    token: str
    name: str
    user: User
    guild_id: int | None
    channel_id: int
    payload: dict[str, Any] = field(repr=False)
    attachment_size_limit: int
    dispatched_at: float = 0.0
    response: InitialResponse | None = None
    original: Message | None = None
    messages: list[Message] = field(default_factory=list)
    #: For a MESSAGE_COMPONENT interaction: the message whose button or select was used.
    component_message: Message | None = None

    @property
    def kind(self) -> int:
        """The interaction type: 2 application command, 3 message component."""
        return int(self.payload["type"])

    @property
    def original_deleted(self) -> bool:
        """Whether the bot deleted its original response (e.g. a public "thinking..." before an error)."""
        return self.original is not None and self.original.deleted

    def metadata(self) -> dict[str, Any]:
        owners = self.payload.get("authorizing_integration_owners", {})
        if self.component_message is not None:
            return {"id": str(self.id), "type": self.kind, "user": self.user.to_payload(),
                    "authorizing_integration_owners": owners, "interacted_message_id": str(self.component_message.id)}
        return {"id": str(self.id), "type": 2, "name": self.name, "user": self.user.to_payload(),
                "authorizing_integration_owners": owners}

    async def wait_response(self, timeout: float = 5) -> InitialResponse:
        return await self.emulator.changes.wait_for(
            lambda: self.response, timeout, f"initial response to /{self.name}")

    async def wait_message(self, timeout: float = 30, index: int = 0) -> Message:
        """The ``index``-th message with content: a type-4 response, a followup, or the filled-in deferral."""
        await self.emulator.changes.wait_for(
            lambda: len(self.messages) > index, timeout, f"message #{index} for /{self.name}")
        return self.messages[index]
