"""A strict loopback Discord (REST + gateway) that the real, unmodified bot talks to over real sockets.

Point discord.py at ``api_base`` / ``gateway_url`` (``env()`` gives the variables the bot reads); the
emulator serves a small default world, records what the bot does, and records every protocol violation
in ``failures`` (the ``discord_emulator`` fixture fails the test on any). See the discord-protocol note.

    emu = DiscordEmulator(token="test-token"); await emu.start()   # or the discord_emulator fixture
    ...start the bot with emu.env()...
    await emu.wait_ready(); await emu.wait_commands(guild_id=emu.guild.id)
    inter = await emu.invoke("speak", {"text": "hi"}, user=emu.user)
    assert (await inter.wait_response()).type == 5
    message = await inter.wait_message()          # .content, .ephemeral, .attachments[0].data, ...
    session = emu.voice_session(); await session.wait_idle()   # voice: packets, SPEAKING, check_stream()

Faults: REST answers per route and count (``fail_next``, ``rate_limit``, ``cloudflare_ban``, ``server_error``;
``rest_calls`` records when each request came and what it got), and gateway drops (``drop_gateway``,
``request_reconnect``, ``invalidate_session``; the session is resumed or identified again, see
``tests.loopback.discord_gateway``).

Tests that provoke a violation on purpose assert on ``emu.failures`` and then clear it.

Sharding: ``emu.add_guild(name, shard=(id, count))`` adds a guild on a chosen shard; each gateway session hears
only its shard's guilds (rules and close codes in ``tests.loopback.discord_gateway``); ``guilds_per_shard`` and
``max_guilds_per_session`` set what ``GET /gateway/bot`` recommends and when IDENTIFY is refused with 4011.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.loopback.discord_chat import GATEWAY_MESSAGE_CONTENT_LIMITED, Chat, ChatMessage
from tests.loopback.discord_gateway import Gateway, GatewaySession, OpHook
from tests.loopback.discord_interactions import build_component_interaction, build_interaction, build_menu_interaction
from tests.loopback.discord_messages import Changes, EmulatedInteraction, Message
from tests.loopback.discord_rest import API_PREFIX, Fault, RestAPI, RestCall
from tests.loopback.discord_state import (
    STAGE_CHANNEL,
    VOICE_CHANNEL,
    Channel,
    Guild,
    Role,
    SnowflakeFactory,
    User,
    WorldBuilder,
)
from tests.loopback.discord_voice import Voice
from tests.loopback.discord_voice_session import VoiceSession
from tests.loopback.openapi import OpenAPISpec, load_spec

DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
#: Seconds a person takes at least to use a component they have just seen (``select``, ``click``): about a
#: simple visual reaction time (0.2-0.3 s), and far longer than the bot needs to store the view it sent.
HUMAN_REACTION = 0.3


class DiscordEmulator:
    """The loopback Discord. Build the world, ``start()``, run the bot against it, assert, ``close()``."""

    def __init__(self, token: str = "test-token", *, heartbeat_interval_ms: int = 41250) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_deadline = 3.0  # seconds to the initial response (Discord: 3)
        self.token_lifetime = 15 * 60.0  # seconds an interaction token accepts followups and edits
        self.spec: OpenAPISpec = load_spec()
        self.snowflake = SnowflakeFactory()
        self.build = WorldBuilder(self.snowflake)
        self.changes = Changes()

        self.failures: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path below /api/v10)
        self.rest_calls: list[RestCall] = []  # the same requests with arrival time, status and any fault served
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global) → registered
        self.interactions: dict[int, EmulatedInteraction] = {}
        self.channel_messages: list[Message] = []
        self._faults: list[Fault] = []

        self.verify_key = secrets.token_hex(32)
        self.bot_user: User = self.build.user("speechbot", bot=True)
        self.application_id = self.bot_user.id  # like modern Discord apps
        self.owner: User = self.build.user("owner")  # owns the guild and the application
        self.user: User = self.build.user("alice")
        self.other_user: User = self.build.user("bob")
        self.guilds: list[Guild] = []
        self.guild: Guild = self.add_guild("Loopback Guild")
        self.text_channel: Channel = self.guild.channel_named("general")
        self.voice_channel: Channel = self.guild.channel_named("Voice")
        self.stage_channel: Channel = self.guild.channel_named("Stage")
        self.bot_role: Role = next(r for r in self.guild.roles if r.name == "speechbot")
        # Sharding (tests.loopback.discord_gateway): GET /gateway/bot recommends one shard per this many guilds,
        # and a session holding more than max_guilds_per_session guilds is closed with 4011, as on Discord.
        self.guilds_per_shard = 1000
        self.max_guilds_per_session = 2500

        self.rest = RestAPI(self)
        self.gateway = Gateway(self)
        self.voice = Voice(self)
        self.chat = Chat(self)  # members post, edit and delete messages (tests.loopback.discord_chat)
        # The portal's switches: Message Content on (under 100 servers), as for a correctly set-up bot.
        self.application_flags = GATEWAY_MESSAGE_CONTENT_LIMITED
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def add_guild(self, name: str, *, shard: tuple[int, int] | None = None) -> Guild:
        """A guild like the default one: #general, a "Voice" channel, a "Stage" channel (empty), the bot (with its
        role), the owner, alice and bob as members, alice in the voice channel. ``shard=(id, count)``: its id
        falls on that shard."""
        guild = self.build.guild(name, owner=self.owner, shard=shard)
        self.guilds.append(guild)
        self.build.channel(guild, "general")
        voice = self.build.channel(guild, "Voice", type=VOICE_CHANNEL, bitrate=64000, user_limit=0)
        self.build.channel(guild, "Stage", type=STAGE_CHANNEL, bitrate=64000, user_limit=0)
        bot_role = self.build.role(guild, "speechbot", permissions=0)
        for user in (self.bot_user, self.owner, self.user, self.other_user):
            self.build.member(guild, user, roles=[bot_role] if user is self.bot_user else [])
        self.build.join_voice(guild, self.user, voice)
        return guild

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=512 * 1024 * 1024)
        for method, path, caller, handler in self.rest.routes():
            app.router.add_route(method, API_PREFIX + path, self.rest.wrap(caller, handler))
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self.rest.get_attachment)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await self.voice.server.start()

    async def close(self) -> None:
        if self._runner is not None:
            await self.gateway.close()
            await self.voice.server.close()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.http_base + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def ca_pem_path(self) -> str:
        """The CA that signed the voice server's certificate (the voice websocket is always TLS)."""
        assert self.voice.server.ca_pem_path is not None, "start() the emulator first"
        return self.voice.server.ca_pem_path

    def env(self) -> dict[str, str]:
        """The environment the bot process reads to reach this emulator (aiohttp trusts SSL_CERT_FILE)."""
        return {"DISCORD_TOKEN": self.token, "DISCORD_API_BASE": self.api_base,
                "DISCORD_GATEWAY_URL": self.gateway_url, "SSL_CERT_FILE": self.ca_pem_path}

    # -- lookups used by the REST and gateway halves -----------------------------------------------------

    def bot_user_private(self) -> dict[str, Any]:
        """The bot's own user object as ``/users/@me`` and READY show it (with the private fields)."""
        return {**self.bot_user.to_payload(), "verified": True, "mfa_enabled": False, "locale": "en-US"}

    @staticmethod
    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    def guild_by_id(self, guild_id: int) -> Guild:
        return next(g for g in self.guilds if g.id == guild_id)

    def find_channel(self, channel_id: int) -> Channel | None:
        return next((c for g in self.guilds for c in g.channels if c.id == channel_id), None)

    def all_messages(self) -> list[Message]:
        found = list(self.channel_messages)
        for interaction in self.interactions.values():
            found += [m for m in [interaction.original, *interaction.messages] if m is not None]
        return found

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.method == method.upper() and fault.path.search(path):
                self._faults.remove(fault)
                return fault
        return None

    # -- test API ---------------------------------------------------------------------------------------

    def fail_next(self, method: str, path_regex: str, status: int, body: Any = None,
                  headers: Mapping[str, str] | None = None, *, times: int = 1,
                  content_type: str = "application/json") -> None:
        """Answer the next ``times`` ``method`` requests whose path (below /api/v10) matches with this instead.

        ``body`` goes out as JSON unless ``content_type`` says otherwise. For rate limits and server errors
        shaped like Discord's own, use ``rate_limit``, ``cloudflare_ban`` and ``server_error``.
        """
        body = {"message": f"{status}: injected", "code": 0} if body is None else body
        fault = Fault(method.upper(), re.compile(path_regex), status, body, dict(headers or {}), content_type)
        self._faults.extend([fault] * times)

    def rate_limit(self, method: str, path_regex: str, *, times: int = 1, retry_after: float = 0.5,
                   scope: str = "user") -> None:
        """Answer the next ``times`` matching requests with Discord's 429: the JSON body, ``Retry-After`` (whole
        seconds, rounded up), ``X-RateLimit-Scope`` (``user``, ``shared`` or ``global``), ``Via`` (Discord's
        edge), and per-route limits' ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket`` or a global
        one's ``X-RateLimit-Global``. The route (every bot route, for ``global``) must then wait."""
        if scope not in ("user", "shared", "global"):
            raise ValueError(f"X-RateLimit-Scope is user, shared or global, not {scope!r}")
        is_global = scope == "global"
        headers = {"Via": "1.1 google", "Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": scope}
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update({"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                            "X-RateLimit-Bucket": secrets.token_hex(16)})
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        fault = Fault(method.upper(), re.compile(path_regex), 429, body, headers, retry_after=retry_after,
                      is_global=is_global)
        self._faults.extend([fault] * times)

    def cloudflare_ban(self, method: str, path_regex: str, *, times: int = 1) -> None:
        """Answer like Cloudflare does once an IP made too many invalid requests (error 1015): 429 with an HTML
        page and neither ``Via`` nor rate-limit headers. discord.py raises at once (``http.py``: a 429 without
        ``Via`` is a ban); retrying would only lengthen the ban."""
        page = ("<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to restrict "
                "access</title></head><body><h1>Error 1015</h1><p>You are being rate limited.</p></body></html>")
        headers = {"Server": "cloudflare", "CF-Ray": f"{secrets.token_hex(8)}-FRA", "Retry-After": "3600"}
        self.fail_next(method, path_regex, 429, page, headers, times=times, content_type="text/html; charset=UTF-8")

    def server_error(self, method: str, path_regex: str, status: int = 500, *, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with a 5xx as Discord's stack sends them: 500 from the
        API (JSON), 502 and 504 from the edge (an HTML page), 503 from the proxy in front of the API (text)."""
        if status == 500:
            self.fail_next(method, path_regex, 500, {"message": "500: Internal Server Error", "code": 0},
                           {"Via": "1.1 google"}, times=times)
        elif status == 503:
            self.fail_next(method, path_regex, 503, "upstream connect error or disconnect/reset before headers. "
                           "reset reason: overflow", {"Via": "1.1 google"}, times=times, content_type="text/plain")
        elif status in (502, 504):
            title = "502 Bad Gateway" if status == 502 else "504 Gateway Time-out"
            page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
            self.fail_next(method, path_regex, status, page, {"Server": "cloudflare"}, times=times,
                           content_type="text/html")
        else:
            raise ValueError(f"no Discord-shaped body for status {status}")

    def faults_left(self) -> int:
        """Injected answers not served yet (a test that expected them all used should see 0)."""
        return len(self._faults)

    @property
    def gateway_ops(self) -> list[tuple[int, Any]]:
        """Every (op, d) the client sent on the gateway, in order."""
        return [(sent.op, sent.d) for sent in self.gateway.ops]

    @property
    def sessions(self) -> list[GatewaySession]:
        return list(self.gateway.sessions.values())

    def on_op(self, op: int, hook: OpHook) -> None:
        """Run ``await hook(session, d)`` whenever the identified client sends gateway ``op``."""
        self.gateway.on_op(op, hook)

    async def dispatch(self, event: str, data: Any) -> None:
        """Send a gateway event (``t=event``) to the bot."""
        await self.gateway.dispatch(event, data)

    async def request_reconnect(self) -> None:
        """Ask the bot to reconnect (op 7); it comes back with RESUME."""
        await self.gateway.request_reconnect()

    async def drop_gateway(self, code: int | None = None) -> None:
        """Cut the bot's gateway connection (abruptly with None, else with close ``code``); it should RESUME."""
        await self.gateway.drop(code)

    def gateway_outage(self) -> Any:
        """``async with emu.gateway_outage():`` new gateway connections get no HELLO until the block ends."""
        return self.gateway.outage()

    async def invalidate_session(self, resumable: bool) -> None:
        """Send op 9: ``True`` → the bot RESUMEs; ``False`` → the session is gone and the bot IDENTIFYs again."""
        await self.gateway.invalidate(resumable)

    async def wait_ready(self, timeout: float = 20) -> GatewaySession:
        """The session once the bot identified and received READY and every GUILD_CREATE."""
        return await self.changes.wait_for(
            lambda: next((s for s in self.gateway.sessions.values() if s.ready), None), timeout, "IDENTIFY")

    async def wait_commands(self, timeout: float = 20, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The commands registered for ``guild_id`` (None: global) once the bot has synced them."""
        return await self.changes.wait_for(lambda: self.commands.get(guild_id), timeout,
                                           f"command sync for guild {guild_id}")

    async def wait_for(self, predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
        """Wait until ``predicate()`` is truthy (re-checked after every request and gateway op)."""
        return await self.changes.wait_for(predicate, timeout, what)

    async def invoke(self, command: str, options: Mapping[str, Any] | None = None, *, user: User | None = None,
                     guild: Guild | None = None, channel: Channel | None = None,
                     attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT, locale: str = "en-US",
                     ) -> EmulatedInteraction:
        """Dispatch INTERACTION_CREATE for a registered slash command, as a Discord client would build it.

        ``command`` may name a subcommand ("settings voice"). Options are typed from the registered schema;
        an unknown command, option or choice, or a missing required option, raises here (Discord's client
        would not let a user send it).
        """
        interaction = build_interaction(
            self, command, dict(options or {}), user=user or self.user, guild=guild or self.guild,
            channel=channel or self.text_channel, attachment_size_limit=attachment_size_limit, locale=locale)
        self.interactions[interaction.id] = interaction
        interaction.dispatched_at = self.loop_time()
        await self.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction

    async def invoke_menu(self, name: str, target: ChatMessage, *, user: User | None = None,
                          channel: Channel | None = None) -> EmulatedInteraction:
        """Dispatch INTERACTION_CREATE for a message context menu ("Apps → ``name``") on ``target``."""
        guild = self.guild_by_id(target.guild_id)
        interaction = build_menu_interaction(
            self, name, target.payload, user=user or self.user, guild=guild,
            channel=channel or self.find_channel(target.channel_id) or self.text_channel,
            attachment_size_limit=DEFAULT_ATTACHMENT_SIZE_LIMIT, locale="en-US")
        self.interactions[interaction.id] = interaction
        interaction.dispatched_at = self.loop_time()
        await self.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction

    async def select(self, message: Message, custom_id: str, values: list[str], *, user: User | None = None,
                     tampered: bool = False) -> EmulatedInteraction:
        """Dispatch the MESSAGE_COMPONENT interaction of choosing ``values`` in a string select of ``message``
        (checked as Discord's client would: see ``build_component_interaction``)."""
        return await self._component(message, custom_id, values, user, tampered)

    async def click(self, message: Message, custom_id: str, *, user: User | None = None,
                    tampered: bool = False) -> EmulatedInteraction:
        """Dispatch the MESSAGE_COMPONENT interaction of pressing a button of ``message``."""
        return await self._component(message, custom_id, None, user, tampered)

    async def _component(self, message: Message, custom_id: str, values: list[str] | None, user: User | None,
                         tampered: bool) -> EmulatedInteraction:
        interaction = build_component_interaction(self, message, custom_id, values, user=user or self.user,
                                                  tampered=tampered)
        # Nobody clicks within HUMAN_REACTION of a component appearing; faster would race the bot on Discord
        # too (discord.py stores a view only after the HTTP call that sent it returns).
        await asyncio.sleep(max(0.0, message.shown_at + HUMAN_REACTION - time.monotonic()))
        self.interactions[interaction.id] = interaction
        interaction.dispatched_at = self.loop_time()
        await self.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction

    # -- voice (tests.loopback.discord_voice; faults and more on ``self.voice``) -------------------------

    def voice_session(self, guild: Guild | None = None) -> VoiceSession:
        """The bot's current (or last) voice session: packets, SPEAKING events, stream checks."""
        return self.voice.session(guild or self.guild)

    def voice_connected(self, guild: Guild | None = None) -> bool:
        return self.voice.connected(guild or self.guild)

    async def move_member(self, user: User, channel: Channel | None) -> None:
        """Move a human into ``channel`` (None: out of voice), dispatching their VOICE_STATE_UPDATE."""
        await self.voice.move_member(user, channel)

    async def move_bot(self, guild: Guild, channel: Channel) -> None:
        await self.voice.move_bot(guild, channel)

    async def disconnect_bot_by_moderator(self, guild: Guild | None = None) -> None:
        await self.voice.disconnect_bot_by_moderator(guild or self.guild)

    async def delete_channel(self, channel: Channel) -> None:
        await self.voice.delete_channel(channel)
