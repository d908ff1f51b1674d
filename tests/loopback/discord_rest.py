"""REST half of the loopback Discord: the routes discord.py uses, answered the way Discord answers them.

Every request is logged; bodies are checked against the OpenAPI operation; token routes (interaction
callbacks, webhooks) must not carry ``Authorization`` and bot routes must. Anything the real API would
refuse is refused here too, with Discord's status and error code, and recorded in ``emulator.failures``.

Injected faults (``Fault``, see ``DiscordEmulator.fail_next`` / ``rate_limit`` / ``cloudflare_ban`` /
``server_error``) answer matching requests in place of the handler, after the body was read, as Discord's
edge does. A rate limit is enforced: a request on the limited route (any bot route for a global limit)
before its ``retry_after`` has passed is a violation.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.loopback.discord_commands import command_errors, discord_locales
from tests.loopback.discord_messages import (
    EPHEMERAL,
    LOADING,
    Attachment,
    EmulatedInteraction,
    InitialResponse,
    Message,
)
from tests.loopback.discord_state import SEND_VOICE_MESSAGES, Channel, iso_now

VOICE_MESSAGE = 1 << 13  # message flag IS_VOICE_MESSAGE

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator

API_PREFIX = "/api/v10"
BOT, TOKEN, ANY = "bot", "token", "any"  # who may call a route: the bot token, a webhook token, either
_FILE_PART = re.compile(r"^files\[(\d+)\]$")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly: discord.py parses nothing else (note 2.1)."""
    return web.Response(status=status, body=json.dumps(payload).encode(),
                        headers={**(headers or {}), "Content-Type": "application/json"})


class DiscordError(Exception):
    """A refusal the way Discord words it; ``violation`` says whether it is the bot's fault."""

    def __init__(self, status: int, code: int, message: str, *, violation: bool = True,
                 errors: Any = None) -> None:
        detail = f": {json.dumps(errors)}" if errors is not None else ""
        super().__init__(f"{status} {code} {message}{detail}")
        self.status, self.code, self.message, self.violation, self.errors = status, code, message, violation, errors

    def response(self) -> web.Response:
        payload: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            payload["errors"] = self.errors
        return json_response(payload, self.status)


@dataclass
class Body:
    """A decoded request body: the JSON (or multipart ``payload_json``) and the ``files[n]`` parts."""

    media_type: str | None = None
    json: Any = None
    files: dict[int, tuple[str, bytes]] = field(default_factory=dict)


Handler = Callable[[web.Request, Body], Awaitable[Any]]


@dataclass(frozen=True)
class Fault:
    """A canned response for the next request matching ``method`` and ``path`` (see ``fail_next``).

    ``body`` is sent as JSON with ``content_type`` application/json, else as text. With ``retry_after`` set
    the answer is a rate limit: ``X-RateLimit-Reset`` is stamped when served, and the route (every bot
    route when ``is_global``) must then stay quiet for that long.
    """

    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    content_type: str = "application/json"
    retry_after: float | None = None
    is_global: bool = False


@dataclass
class RestCall:
    """One API request as served: when it arrived (emulator loop clock), and the status it got."""

    method: str
    path: str
    at: float
    status: int | None = None
    fault: Fault | None = None


@dataclass
class _Block:
    """A rate limit handed out: requests it covers must not come back before ``until``."""

    fault: Fault
    until: float


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class RestAPI:
    """Route handlers over the emulator's state."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.uploads: dict[int, Attachment] = {}  # files users attached to slash command options
        self._blocks: list[_Block] = []

    def routes(self) -> list[tuple[str, str, str, Handler]]:
        """(method, path, caller, handler); literal segments come before parameters, as aiohttp matches in order."""
        original = "/webhooks/{webhook_id}/{token}/messages/@original"
        followup = "/webhooks/{webhook_id}/{token}/messages/{message_id}"
        return [
            ("GET", "/users/@me", BOT, self.get_me),
            ("GET", "/oauth2/applications/@me", BOT, self.get_application),
            ("GET", "/gateway", ANY, self.get_gateway),
            ("GET", "/gateway/bot", BOT, self.get_gateway_bot),
            ("GET", "/applications/{app_id}/commands", BOT, self.get_commands),
            ("PUT", "/applications/{app_id}/commands", BOT, self.put_commands),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", BOT, self.get_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", BOT, self.put_commands),
            ("POST", "/interactions/{interaction_id}/{token}/callback", TOKEN, self.interaction_callback),
            ("POST", "/webhooks/{webhook_id}/{token}", TOKEN, self.execute_webhook),
            ("GET", original, TOKEN, self.get_webhook_message),
            ("PATCH", original, TOKEN, self.edit_webhook_message),
            ("DELETE", original, TOKEN, self.delete_webhook_message),
            ("GET", followup, TOKEN, self.get_webhook_message),
            ("PATCH", followup, TOKEN, self.edit_webhook_message),
            ("DELETE", followup, TOKEN, self.delete_webhook_message),
            ("POST", "/channels/{channel_id}/messages", BOT, self.create_channel_message),
            ("PATCH", "/guilds/{guild_id}/voice-states/@me", BOT, self.emu.voice.update_own_voice_state),
        ]

    # -- plumbing ---------------------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        """Log API calls, serve injected faults, turn refusals and unknown routes into Discord-style JSON."""
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        path = request.path[len(API_PREFIX):]
        self.emu.requests.append((request.method, path))
        call = RestCall(request.method, path, self.emu.loop_time())
        self.emu.rest_calls.append(call)
        self._check_rate_limits(request, path, call.at)
        if (fault := self.emu.take_fault(request.method, path)) is not None:
            await request.read()  # Discord's edge takes the whole request before answering
            call.fault = fault
            response = self._fault_response(fault, call.at)
            call.status = response.status
            await self.emu.changes.notify()
            return response
        try:
            response = await handler(request)
            call.status = response.status
            return response
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            self.emu.failures.append(f"unknown route: {request.method} {request.path_qs}")
            return json_response({"message": "404: Not Found", "code": 0}, 404)
        except DiscordError as error:
            if error.violation:
                self.emu.failures.append(f"{request.method} {path}: {error}")
            call.status = error.status
            return error.response()
        except Exception:  # an emulator bug: report it, and answer 400 so discord.py does not retry for 25 s
            self.emu.failures.append(f"loopback Discord crashed on {request.method} {path}:\n{traceback.format_exc()}")
            return json_response({"message": "loopback Discord crashed; see emulator.failures", "code": 0}, 400)
        finally:
            await self.emu.changes.notify()

    def _fault_response(self, fault: Fault, now: float) -> web.Response:
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            self._blocks.append(_Block(fault, now + fault.retry_after))
            if not fault.is_global:
                headers["X-RateLimit-Reset"] = f"{time.time() + fault.retry_after:.3f}"
        if fault.content_type == "application/json":
            return json_response(fault.body, fault.status, headers)
        body = fault.body if isinstance(fault.body, bytes) else str(fault.body).encode()
        return web.Response(status=fault.status, body=body, headers={**headers, "Content-Type": fault.content_type})

    #: asyncio may wake a sleeper up to a clock tick early; a retry this close to the end of its wait is fine.
    _RATE_LIMIT_SLACK = 0.01

    def _check_rate_limits(self, request: web.Request, path: str, now: float) -> None:
        """A request a rate limit still covers is what gets bots Cloudflare-banned: record it as a violation."""
        bot_route = request.headers.get("Authorization", "").startswith("Bot ")
        for block in list(self._blocks):
            if now >= block.until - self._RATE_LIMIT_SLACK:
                self._blocks.remove(block)
                continue
            covered = (block.fault.is_global and bot_route) or (
                block.fault.method == request.method and block.fault.path.search(path))
            if covered:
                self.emu.failures.append(
                    f"{request.method} {path} sent {block.until - now:.3f} s before the rate limit "
                    f"(retry_after={block.fault.retry_after}) allowed it")

    def wrap(self, caller: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Check credentials, query and body against the spec before ``handler`` sees the request."""

        async def endpoint(request: web.Request) -> web.StreamResponse:
            path = request.path[len(API_PREFIX):]
            self._check_auth(request, caller)
            operation = self.emu.spec.find(request.method, path)
            if operation is None:
                raise DiscordError(404, 0, "404: Not Found")  # a route the emulator serves but the spec lacks
            if unknown := sorted(set(request.query) - set(operation.query)):
                self.emu.failures.append(f"{request.method} {path}: undeclared query parameters {unknown}")
            body = await self._read_body(request)
            if body.media_type is not None:
                errors = self.emu.spec.validate_body(operation, body.media_type, body.json)
                if errors:
                    raise DiscordError(400, 50035, "Invalid Form Body", errors={"_spec": errors})
            elif operation.body_required:
                raise DiscordError(400, 50035, "Invalid Form Body", errors={"_spec": ["a request body is required"]})
            result = await handler(request, body)
            status = 204 if result is None else 200
            for error in self.emu.spec.validate_response(operation, status, result):
                self.emu.failures.append(f"loopback Discord answered {request.method} {path} off-spec: {error}")
            return web.Response(status=204) if result is None else json_response(result)

        return endpoint

    def _check_auth(self, request: web.Request, caller: str) -> None:
        auth = request.headers.get("Authorization")
        if caller == TOKEN and auth is not None:
            raise DiscordError(400, 0, "token routes must not carry an Authorization header")
        if caller != BOT:
            return
        agent = request.headers.get("User-Agent", "")
        if not agent.startswith("DiscordBot ("):
            self.emu.failures.append(f"{request.method} {request.path}: User-Agent {agent!r} "
                                     "is not 'DiscordBot (url, version)'")
        if auth is None:
            raise DiscordError(401, 0, "401: Unauthorized")
        if auth != f"Bot {self.emu.token}":
            raise DiscordError(401, 0, "401: Unauthorized", violation=False)  # a wrong token is a test scenario

    async def _read_body(self, request: web.Request) -> Body:
        if not request.body_exists:
            return Body()
        media_type = request.content_type
        if media_type == "application/json":
            try:
                return Body(media_type, json.loads(await request.read()))
            except ValueError:
                raise DiscordError(400, 50109, "The request body contains invalid JSON.") from None
        if media_type != "multipart/form-data":
            raise DiscordError(400, 50035, f"unsupported Content-Type {media_type!r}")
        body = Body(media_type)
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            name = part.name or ""
            data = await part.read()  # type: ignore[union-attr]
            if name == "payload_json":
                try:
                    body.json = json.loads(data)
                except ValueError:
                    raise DiscordError(400, 50109, "payload_json is not valid JSON.") from None
            elif match := _FILE_PART.match(name):
                if not part.filename:  # type: ignore[union-attr]
                    raise DiscordError(400, 50035, f"multipart part {name} has no filename")
                body.files[int(match[1])] = (part.filename, bytes(data))  # type: ignore[union-attr]
            else:
                raise DiscordError(400, 50035, f"multipart part {name!r} is neither payload_json nor files[n]")
        return body

    # -- messages ---------------------------------------------------------------------------------------

    def _attachments(self, data: dict[str, Any], files: dict[int, tuple[str, bytes]], channel_id: int,
                     limit: int, keep: Sequence[Attachment] = ()) -> list[Attachment]:
        """New uploads matched to ``attachments[].id``, plus the kept ones an edit lists by snowflake."""
        for filename, blob in files.values():
            if len(blob) > limit:
                raise DiscordError(413, 40005, f"Request entity too large: {filename} is {len(blob)} bytes, "
                                               f"the limit is {limit}")
        entries = data.get("attachments") or []
        referenced = {int(e["id"]) for e in entries if int(e["id"]) in files}
        if unreferenced := sorted(set(files) - referenced):
            raise DiscordError(400, 50035, f"files{unreferenced} are not referenced by attachments[].id")
        result = []
        kept = {a.id: a for a in keep}
        for entry in entries:
            ref = int(entry["id"])
            if ref in files:
                filename = entry.get("filename") or files[ref][0]
                attachment_id = self.emu.snowflake()
                result.append(Attachment(attachment_id, filename, files[ref][1],
                                         f"{self.emu.http_base}/attachments/{channel_id}/{attachment_id}/{filename}",
                                         entry.get("description"), entry.get("duration_secs"), entry.get("waveform")))
            elif ref in kept:
                result.append(kept[ref])
            else:
                raise DiscordError(400, 50035, f"attachments[].id {ref} matches no files[n] part nor existing file")
        return result

    def _new_message(self, data: dict[str, Any], files: dict[int, tuple[str, bytes]], channel: Channel,
                     limit: int, interaction: EmulatedInteraction | None = None) -> Message:
        attachments = self._attachments(data, files, channel.id, limit)
        message = Message(
            id=self.emu.snowflake(), channel_id=channel.id, guild_id=channel.guild_id, author=self.emu.bot_user,
            content=data.get("content") or "", flags=data.get("flags") or 0, tts=bool(data.get("tts")),
            embeds=data.get("embeds") or [], attachments=attachments, allowed_mentions=data.get("allowed_mentions"),
            components=self._number_components(data.get("components")), interaction=interaction,
            webhook_id=self.emu.application_id if interaction else None,
        )
        self._check_not_empty(message)
        return message

    def _edit(self, message: Message, data: dict[str, Any], files: dict[int, tuple[str, bytes]], limit: int) -> None:
        """Apply the keys an edit carries, all or nothing; a deferral's placeholder becomes a real message."""
        changes: dict[str, Any] = {key: data[key] for key in ("content", "embeds", "allowed_mentions", "components")
                                   if key in data}
        changes.update({key: empty for key, empty in (("content", ""), ("embeds", []))
                        if key in changes and changes[key] is None})
        if "components" in changes:
            changes["components"] = self._number_components(changes["components"])
        if "attachments" in data or files:
            changes["attachments"] = self._attachments(data, files, message.channel_id, limit,
                                                       keep=message.attachments)
        self._check_not_empty(dataclasses.replace(message, **changes))
        for key, value in changes.items():
            setattr(message, key, value)
        message.shown_at = time.monotonic()
        if message.loading:
            message.flags &= ~LOADING
        else:
            message.edits += 1
            message.edited_timestamp = iso_now()

    @staticmethod
    def _number_components(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Discord numbers every component of a message (depth first, from 1) when the bot leaves ``id`` out."""
        counter = iter(range(1, 1000))

        def number(component: dict[str, Any]) -> dict[str, Any]:
            numbered = {**component, "id": component.get("id") or next(counter)}
            if "components" in component:
                numbered["components"] = [number(c) for c in component["components"]]
            return numbered

        return [number(c) for c in components or []]

    @staticmethod
    def _check_not_empty(message: Message) -> None:
        if not (message.content or message.embeds or message.attachments or message.components):
            raise DiscordError(400, 50006, "Cannot send an empty message")

    # -- bot routes -------------------------------------------------------------------------------------

    async def get_me(self, request: web.Request, body: Body) -> Any:
        return self.emu.bot_user_private()

    async def get_application(self, request: web.Request, body: Body) -> Any:
        """``interactions_endpoint_url`` is null: interactions arrive over the gateway."""
        return {
            "id": str(self.emu.application_id), "name": self.emu.bot_user.username, "description": "",
            "icon": None, "type": None, "bot_public": True, "bot_require_code_grant": False,
            "owner": self.emu.owner.to_payload(), "verify_key": self.emu.verify_key,
            "flags": self.emu.application_flags, "flags_new": str(self.emu.application_flags),
            "bot": self.emu.bot_user.to_payload(), "team": None, "summary": "", "redirect_uris": [],
            "interactions_endpoint_url": None, "role_connections_verification_url": None,
            "eligible_oauth2_scopes": ["bot", "applications.commands"], "explicit_content_filter": 0,
            "approximate_guild_count": len(self.emu.guilds), "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
        }

    async def get_gateway(self, request: web.Request, body: Body) -> Any:
        return {"url": self.emu.gateway_url}

    async def get_gateway_bot(self, request: web.Request, body: Body) -> Any:
        """What AutoShardedClient asks when it picks its own shard count: Discord's recommendation (one shard
        per ``emu.guilds_per_shard`` guilds) and the session starts left today."""
        total = 1000
        limits = {"total": total, "remaining": max(0, total - self.emu.gateway.identified),
                  "reset_after": 86_400_000, "max_concurrency": 1}
        shards = max(1, math.ceil(len(self.emu.guilds) / self.emu.guilds_per_shard))
        return {"url": self.emu.gateway_url, "shards": shards, "session_start_limit": limits}

    def _command_scope(self, request: web.Request) -> int | None:
        if request.match_info["app_id"] != str(self.emu.application_id):
            raise DiscordError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if not any(str(g.id) == guild_id for g in self.emu.guilds):
            raise DiscordError(403, 50001, "Missing Access")
        return int(guild_id)

    async def get_commands(self, request: web.Request, body: Body) -> Any:
        return self.emu.commands.get(self._command_scope(request), [])

    async def put_commands(self, request: web.Request, body: Body) -> Any:
        """Bulk overwrite: echo with ids (stable per name, as on Discord), application id and version."""
        scope = self._command_scope(request)
        if errors := command_errors(body.json or [], discord_locales(self.emu.spec.doc)):
            raise DiscordError(400, 50035, "Invalid Form Body", errors={"_commands": errors})
        previous = {c["name"]: c["id"] for c in self.emu.commands.get(scope, [])}
        registered = []
        for command in body.json or []:
            echoed = {
                **command, "id": previous.get(command["name"]) or str(self.emu.snowflake()),
                "application_id": str(self.emu.application_id), "version": str(self.emu.snowflake()),
                "type": command.get("type") or 1, "description": command.get("description") or "",
                "integration_types": command.get("integration_types") or [0],
                "default_member_permissions": None,
            }
            if command.get("default_member_permissions") is not None:  # Discord answers with a string
                echoed["default_member_permissions"] = str(command["default_member_permissions"])
            if scope is not None:
                echoed["guild_id"] = str(scope)
            registered.append(echoed)
        self.emu.commands[scope] = registered
        return registered

    async def create_channel_message(self, request: web.Request, body: Body) -> Any:
        channel = self.emu.find_channel(int(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        guild = self.emu.guild_by_id(channel.guild_id)
        data = body.json or {}
        if (data.get("flags") or 0) & VOICE_MESSAGE:
            self._check_voice_message(data, body.files, channel)
        message = self._new_message(data, body.files, channel, guild.upload_limit)
        self.emu.channel_messages.append(message)
        return message.to_payload()

    def _check_voice_message(self, data: dict[str, Any], files: dict[int, tuple[str, bytes]], channel: Channel) -> None:
        """Discord's rules for a message flagged IS_VOICE_MESSAGE (its errors 50173, 50159, 50160, 50161)."""
        guild = self.emu.guild_by_id(channel.guild_id)
        if not guild.channel_permissions(guild.member(self.emu.bot_user.id), channel) & SEND_VOICE_MESSAGES:
            raise DiscordError(403, 50173, "Cannot send voice messages in this channel")
        if data.get("content") or data.get("embeds") or data.get("sticker_ids") or data.get("components"):
            raise DiscordError(400, 50159, "Voice messages do not support additional content.")
        entries = data.get("attachments") or []
        if len(entries) != 1 or len(files) != 1:
            raise DiscordError(400, 50160, "Voice messages must have a single audio attachment.")
        entry, (filename, blob) = entries[0], next(iter(files.values()))
        duration, waveform = entry.get("duration_secs"), entry.get("waveform")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0 \
                or not isinstance(waveform, str):
            raise DiscordError(400, 50161, "Voice messages must have supporting metadata.")
        try:
            amplitudes = base64.b64decode(waveform, validate=True)
        except ValueError:
            raise DiscordError(400, 50035, "attachments[0].waveform is not base64") from None
        if len(amplitudes) > 256 or not blob.startswith(b"OggS") or not (entry.get("filename") or filename).endswith(
                ".ogg"):
            raise DiscordError(400, 50161, "Voice messages must have supporting metadata.")

    # -- interaction routes -----------------------------------------------------------------------------

    async def interaction_callback(self, request: web.Request, body: Body) -> Any:
        """The initial response: once, within the deadline (Discord's 3 s), then 10062 or 40060."""
        interaction = self.emu.interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise DiscordError(404, 10062, "Unknown interaction")
        elapsed = self.emu.loop_time() - interaction.dispatched_at
        if interaction.response is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if elapsed > self.emu.interaction_deadline:
            raise DiscordError(404, 10062, f"Unknown interaction (answered after {elapsed:.2f} s)")
        callback_type, data = body.json["type"], body.json.get("data") or {}
        channel = self.emu.find_channel(interaction.channel_id)
        message = None
        if callback_type == 4:
            message = self._new_message(data, body.files, channel, interaction.attachment_size_limit, interaction)
            interaction.messages.append(message)
        elif callback_type == 5:
            message = Message(id=self.emu.snowflake(), channel_id=channel.id, guild_id=channel.guild_id,
                              author=self.emu.bot_user, flags=LOADING | ((data.get("flags") or 0) & EPHEMERAL),
                              interaction=interaction, webhook_id=self.emu.application_id)
        elif callback_type in (6, 7):  # DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE: the component's own message
            message = interaction.component_message
            if message is None or message.deleted:
                raise DiscordError(400, 50035, f"callback type {callback_type} is only for component interactions")
            if callback_type == 7:
                self._edit(message, data, body.files, interaction.attachment_size_limit)
                interaction.messages.append(message)
        elif body.files:
            raise DiscordError(400, 50035, f"callback type {callback_type} cannot carry files")
        interaction.response = InitialResponse(callback_type, data, elapsed)
        interaction.original = message
        if not _truthy(request.query.get("with_response")):
            return None
        summary: dict[str, Any] = {"id": str(interaction.id), "type": interaction.kind,
                                   "response_message_loading": callback_type == 5,
                                   "response_message_ephemeral": bool(message and message.ephemeral)}
        if message is not None:
            summary["response_message_id"] = str(message.id)
        if callback_type != 4:  # the spec's resource union only covers created messages (and activities)
            return {"interaction": summary}
        return {"interaction": summary, "resource": {"type": 4, "message": message.to_payload()}}

    def _webhook_interaction(self, request: web.Request) -> EmulatedInteraction:
        """The interaction behind an application webhook token: acknowledged, and at most 15 minutes old."""
        token = request.match_info["token"]
        interaction = next((i for i in self.emu.interactions.values() if i.token == token), None)
        if interaction is None or request.match_info["webhook_id"] != str(self.emu.application_id):
            raise DiscordError(404, 10015, "Unknown Webhook")
        if self.emu.loop_time() - interaction.dispatched_at > self.emu.token_lifetime:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if interaction.response is None:
            raise DiscordError(404, 10015, "Unknown Webhook (the interaction was never acknowledged)")
        return interaction

    def _webhook_message(self, request: web.Request, interaction: EmulatedInteraction) -> Message:
        wanted = request.match_info.get("message_id")
        if wanted is None:  # @original
            message = interaction.original
        else:
            known = [m for m in [interaction.original, *interaction.messages] if m is not None]
            message = next((m for m in known if str(m.id) == wanted), None)
        if message is None or message.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def execute_webhook(self, request: web.Request, body: Body) -> Any:
        """A followup. As on Discord, the first one after a deferral fills in the "thinking" placeholder,
        which keeps the deferral's visibility (its own ephemeral flag is ignored)."""
        interaction = self._webhook_interaction(request)
        data = body.json or {}
        placeholder = interaction.original
        if placeholder is not None and placeholder.loading and not placeholder.deleted:
            self._edit(placeholder, data, body.files, interaction.attachment_size_limit)
            message = placeholder
        else:
            channel = self.emu.find_channel(interaction.channel_id)
            message = self._new_message(data, body.files, channel, interaction.attachment_size_limit, interaction)
        interaction.messages.append(message)
        return message.to_payload() if _truthy(request.query.get("wait")) else None

    async def get_webhook_message(self, request: web.Request, body: Body) -> Any:
        return self._webhook_message(request, self._webhook_interaction(request)).to_payload()

    async def edit_webhook_message(self, request: web.Request, body: Body) -> Any:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        was_placeholder = message.loading
        self._edit(message, body.json or {}, body.files, interaction.attachment_size_limit)
        if was_placeholder:
            interaction.messages.append(message)
        return message.to_payload()

    async def delete_webhook_message(self, request: web.Request, body: Body) -> Any:
        message = self._webhook_message(request, self._webhook_interaction(request))
        message.deleted = True
        return None

    async def get_attachment(self, request: web.Request) -> web.StreamResponse:
        """Serve uploaded files at the ``url`` the message objects advertise (outside the API prefix)."""
        wanted = int(request.match_info["attachment_id"])
        if wanted in self.uploads:
            return web.Response(body=self.uploads[wanted].data, content_type=self.uploads[wanted].content_type)
        for message in self.emu.all_messages():
            for attachment in message.attachments:
                if attachment.id == wanted:
                    return web.Response(body=attachment.data, content_type=attachment.content_type)
        raise web.HTTPNotFound()
