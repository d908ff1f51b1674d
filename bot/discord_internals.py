"""Every use of discord.py's private API, in one place: what, where, and why the bot cannot do without it.

discord.py 2.7 offers no public way to do these; each is a small, deliberate reach into its internals, and the
pin in ``pyproject.toml`` names the exact release they were written and tested against.
``tests/unit/test_discord_internals.py`` checks every entry of :data:`SEAMS` against the installed discord.py (the
attribute exists, a method keeps its parameters), so an upgrade that moves one fails loudly, naming it.

Callers use the functions below; the two classes that *override* discord.py's voice internals
(``bot.voice.connection``: the voice connection state and voice websocket, with DAVE made safe) register what
they override here as well.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import discord
from discord import http as http_module
from discord.gateway import DiscordVoiceWebSocket, DiscordWebSocket
from discord.http import HTTPClient, Route, handle_message_parameters
from discord.state import ConnectionState
from discord.voice_state import VoiceConnectionState


@dataclass(frozen=True)
class Seam:
    """One private attribute or method the bot relies on."""

    owner: type | ModuleType
    name: str
    why: str
    parameters: tuple[str, ...] | None = None  # for an overridden or called method: its parameters, in order


SEAMS: tuple[Seam, ...] = (
    # -- endpoints (bot/discord_endpoints.py) ---------------------------------------------------------------
    Seam(Route, "BASE", "DISCORD_API_BASE: discord.py has no option for the REST base URL"),
    Seam(DiscordWebSocket, "DEFAULT_GATEWAY", "DISCORD_GATEWAY_URL: nor for the gateway URL"),
    # -- the gateway (shutdown) --------------------------------------------------------------------------------
    Seam(discord.Client, "_get_websocket", "a shard's gateway websocket, to read its send budget",
         ("self", "guild_id", "shard_id")),
    Seam(DiscordWebSocket, "_rate_limiter", "whether leaving a channel now would wait for the next minute"),
    Seam(ConnectionState, "_add_voice_client", "hand voice clients back after a new gateway session forgot them",
         ("self", "guild_id", "voice")),
    # -- the voice client ------------------------------------------------------------------------------------
    Seam(discord.VoiceClient, "_connection", "the connection state: mode, keys, DAVE session, UDP socket"),
    Seam(discord.VoiceClient, "_incr_nonce", "the transport nonce counter the RTP writer advances as discord.py"),
    Seam(discord.VoiceClient, "_player", "where the shared sender's playback stands in for discord.py's player"),
    Seam(VoiceConnectionState, "_voice_disconnect", "skipped on shutdown past the gateway's send budget",
         ("self",)),
    Seam(VoiceConnectionState, "_disconnected", "set when that skipped leave would have been confirmed"),
    # -- the voice connection state and websocket, overridden by bot/voice/connection.py -------------------------
    Seam(VoiceConnectionState, "_connect", "marks a reconnect that timed out (rejoin after 4015)",
         ("self", "reconnect", "timeout", "self_deaf", "self_mute", "resume")),
    Seam(VoiceConnectionState, "_voice_connect", "a join marked as started before its op 4 (race)",
         ("self", "self_deaf", "self_mute")),
    Seam(VoiceConnectionState, "_wait_for_state", "a waiter registered before it yields (race)",
         ("self", "state", "other_states", "timeout")),
    Seam(VoiceConnectionState, "_connect_websocket", "the DAVE-safe websocket instead of discord.py's",
         ("self", "resume")),
    Seam(VoiceConnectionState, "_recover_from_invalid_commit", "op 31 and a new key package (DAVE)",
         ("self", "transition_id")),
    Seam(VoiceConnectionState, "_execute_transition", "discord.py's own op 22 handling, kept",
         ("self", "transition_id")),
    Seam(VoiceConnectionState, "_state_event", "the event the race-free wait waits on"),
    Seam(VoiceConnectionState, "_runner", "whether the connection had been up before a reconnect"),
    Seam(VoiceConnectionState, "reinit_dave_session", "a new DAVE session resets the bot's E2EE state", ("self",)),
    Seam(VoiceConnectionState, "dave_pending_transitions", "transitions the bot answers op 23 for"),
    Seam(DiscordVoiceWebSocket, "received_message", "DAVE JSON ops guarded, ops 11/13 tracked", ("self", "msg")),
    Seam(DiscordVoiceWebSocket, "received_binary_message", "DAVE binary ops guarded, commits held",
         ("self", "msg")),
    Seam(DiscordVoiceWebSocket, "send_transition_ready", "op 23", ("self", "transition_id")),
    Seam(DiscordVoiceWebSocket, "send_binary", "op 28", ("self", "opcode", "data")),
    Seam(DiscordVoiceWebSocket, "from_connection_state", "the websocket's constructor, called as discord.py does",
         ("state", "resume", "hook", "seq_ack")),
    # -- voice messages (discord.py 2.7 cannot send them: no flag, no attachment metadata) ----------------------
    Seam(discord.Client, "http", "the REST client that posts a voice message"),
    Seam(HTTPClient, "send_message", "POST /channels/{id}/messages with the voice message",
         ("self", "channel_id", "params")),
    Seam(http_module, "handle_message_parameters", "the multipart body, with the IS_VOICE_MESSAGE flag"),
    Seam(discord.File, "to_dict", "the attachment entry that carries duration_secs and waveform", ("self", "index")),
)


def gateway_rate_limited(client: discord.Client, guild_id: int) -> bool:
    """True when the guild's shard has spent its gateway send budget (a leave now waits up to a minute)."""
    try:
        return bool(client._get_websocket(guild_id)._rate_limiter.is_ratelimited())
    except AttributeError:  # not connected: leave the ordinary way
        return False


def skip_gateway_leave(voice_client: discord.VoiceClient) -> None:
    """Make this voice client's next disconnect close the connection without sending the gateway's leave (op 4);
    only for shutdown, when Discord drops every voice state with the gateway session a moment later."""
    connection = voice_client._connection

    async def leave_without_op4() -> None:
        connection._disconnected.set()  # nothing to wait for: no op 4, no confirming voice state

    # replacing one instance's method, on purpose (this seam's whole point)
    connection._voice_disconnect = leave_without_op4  # type: ignore[method-assign]


def register_voice_client(client: discord.Client, guild_id: int, voice_client: discord.VoiceClient) -> None:
    """Hand a live voice client back to discord.py after a new gateway session made it forget its voice clients."""
    client._connection._add_voice_client(guild_id, voice_client)


def voice_connection(voice_client: discord.VoiceClient) -> Any:
    """The voice client's connection state (a :class:`bot.voice.connection.SessionConnectionState` for the bot's)."""
    return voice_client._connection


def take_nonce(voice_client: discord.VoiceClient) -> int:
    """The next transport nonce, advanced exactly as discord.py advances it (wrapping at 2^32)."""
    counter: int = voice_client._incr_nonce
    voice_client._incr_nonce = counter + 1 if counter < 0xFFFFFFFF else 0
    return counter


def set_player(voice_client: discord.VoiceClient, player: object) -> None:
    """Put a shared-sender playback where discord.py keeps its player (``is_playing``, ``stop`` ... use it)."""
    # discord.py types the slot as its AudioPlayer thread; the shared sender's playback has the methods it uses
    voice_client._player = player  # type: ignore[assignment]


def reconnect_failed(voice_client: discord.VoiceClient) -> bool:
    """Set by the bot's connection state when a reconnect after the connection had been up timed out."""
    return bool(getattr(voice_client._connection, "reconnect_failed", False))


class _VoiceMessageFile(discord.File):
    """An upload whose attachment entry carries a voice message's metadata."""

    def __init__(self, data: bytes, duration: float, waveform: str) -> None:
        super().__init__(io.BytesIO(data), filename="voice-message.ogg")
        self.duration = duration
        self.waveform = waveform

    def to_dict(self, index: int) -> dict[str, Any]:
        return {**super().to_dict(index), "duration_secs": self.duration, "waveform": self.waveform}


async def send_voice_message(
    client: discord.Client, channel_id: int, data: bytes, *, duration: float, waveform: str
) -> dict[str, Any]:
    """Post ``data`` (Ogg Opus) in the channel as a native voice message: the IS_VOICE_MESSAGE flag, one audio
    attachment with its duration and waveform, no text (Discord's rules). Raises discord.HTTPException."""
    flags = discord.MessageFlags()
    flags.voice = True
    with handle_message_parameters(file=_VoiceMessageFile(data, duration, waveform), flags=flags,
                                   allowed_mentions=discord.AllowedMentions.none()) as params:
        message: dict[str, Any] = await client.http.send_message(channel_id, params=params)  # type: ignore[assignment]
    return message
