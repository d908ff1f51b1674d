"""discord.py's voice client, made to fit the bot: the one object discord.py creates per voice connection.

It says when discord.py has given a connection up for good (``cleanup``), hands playback to the bot's shared
:class:`~bot.voice.sender.PacketSender`, runs the connection state of :mod:`bot.voice.connection`, and can
close without the gateway's leave on shutdown. Kept apart from the sessions, which decide when to join and
leave: this is the adapter to discord.py's internals, through :mod:`bot.discord_internals`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord
from discord.voice_state import VoiceConnectionState

from bot.discord_internals import gateway_rate_limited, set_player, skip_gateway_leave
from bot.voice.connection import SessionConnectionState
from bot.voice.sender import NonBlockingSource, PacketSender


class SessionVoiceClient(discord.VoiceClient):
    """A VoiceClient that says when discord.py has given it up for good, sends on the shared sender, and runs
    the connection of :mod:`bot.voice.connection` (discord.py's, with its races and DAVE gaps closed).

    discord.py calls ``cleanup()`` exactly when a connection is over (``/leave``, a moderator's disconnect,
    a deleted channel, a reconnect that failed), and not during its own reconnects, which briefly report
    the bot as out of the channel. That makes it the one reliable signal for ending a session.

    ``play`` hands non-blocking sources to the bot's one :class:`PacketSender` thread instead of starting a
    thread per guild; any other source gets discord.py's own player.
    """

    def __init__(
        self,
        client: discord.Client,
        channel: discord.abc.Connectable,
        on_cleanup: Callable[[SessionVoiceClient], None],
        sender: PacketSender | None = None,
    ) -> None:
        super().__init__(client, channel)
        self._on_cleanup = on_cleanup
        self._sender = sender

    def create_connection_state(self) -> VoiceConnectionState:
        return SessionConnectionState(self)

    def play(self, source: discord.AudioSource, *, after: Callable[[Exception | None], object] | None = None,
             **encoder_options: Any) -> None:
        if self._sender is None or not isinstance(source, NonBlockingSource):
            super().play(source, after=after, **encoder_options)
            return
        if not self.is_connected():
            raise discord.ClientException("Not connected to voice.")
        if self.is_playing():
            raise discord.ClientException("Already playing audio.")
        set_player(self, self._sender.play(self, source, after))

    def cleanup(self) -> None:
        super().cleanup()
        self._on_cleanup(self)

    def gateway_saturated(self) -> bool:
        """True when this shard's gateway send budget (110 a minute) is spent: a leave now would wait for
        the next window, up to a minute."""
        return gateway_rate_limited(self.client, self.guild.id)

    async def disconnect_without_leaving(self) -> None:
        """Close this voice connection without the gateway's "leave" (op 4).

        Only for shutdown past the gateway's send budget: Discord drops every voice state of a session when
        the gateway connection closes a moment later, so nobody is left with a ghost bot, and shutdown does
        not wait a minute per 110 channels. discord.py has no public switch for this (``bot.discord_internals``).
        """
        skip_gateway_leave(self)
        await self.disconnect(force=True)
