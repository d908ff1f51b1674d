"""The discord.py internals ``bot.voice.connection`` builds on are still there, with the shapes it relies on.

discord.py's voice connection state and voice websocket are not a public API; this fails loudly, naming the
seam, when an upgrade of the pinned discord.py moves one.
"""

from __future__ import annotations

import inspect

import discord
import pytest
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import VoiceConnectionState

from bot.voice import connection

#: The parameters each overridden or called method must keep (the override passes them on unchanged).
SIGNATURES = {
    (VoiceConnectionState, "_connect"): ["self", "reconnect", "timeout", "self_deaf", "self_mute", "resume"],
    (VoiceConnectionState, "_voice_connect"): ["self", "self_deaf", "self_mute"],
    (VoiceConnectionState, "_wait_for_state"): ["self", "state", "other_states", "timeout"],
    (VoiceConnectionState, "_connect_websocket"): ["self", "resume"],
    (VoiceConnectionState, "_recover_from_invalid_commit"): ["self", "transition_id"],
    (VoiceConnectionState, "reinit_dave_session"): ["self"],
    (DiscordVoiceWebSocket, "received_message"): ["self", "msg"],
    (DiscordVoiceWebSocket, "received_binary_message"): ["self", "msg"],
    (DiscordVoiceWebSocket, "send_transition_ready"): ["self", "transition_id"],
    (DiscordVoiceWebSocket, "send_binary"): ["self", "opcode", "data"],
    (DiscordVoiceWebSocket, "from_connection_state"): ["state", "resume", "hook", "seq_ack"],
}


@pytest.mark.parametrize(("owner", "name"), connection.REQUIRED_INTERNALS,
                         ids=[f"{o.__name__}.{n}" for o, n in connection.REQUIRED_INTERNALS])
def test_every_internal_the_connection_uses_exists(owner: type, name: str) -> None:
    assert callable(getattr(owner, name, None)), f"discord.py {discord.__version__} has no {owner.__name__}.{name}"


@pytest.mark.parametrize(("owner", "name"), list(SIGNATURES), ids=[f"{o.__name__}.{n}" for o, n in SIGNATURES])
def test_the_overridden_methods_keep_their_parameters(owner: type, name: str) -> None:
    parameters = list(inspect.signature(getattr(owner, name)).parameters)
    assert parameters == SIGNATURES[owner, name], f"{owner.__name__}.{name} changed in discord.py {discord.__version__}"


def test_the_connection_state_attributes_dave_handling_reads_exist() -> None:
    source = inspect.getsource(VoiceConnectionState.__init__)
    for attribute in ("dave_session", "dave_protocol_version", "dave_pending_transitions", "_state_event", "ws"):
        assert f"self.{attribute}" in source, f"VoiceConnectionState no longer sets {attribute}"
    assert "MLS_COMMIT_WELCOME" in dir(DiscordVoiceWebSocket)


def test_the_op_numbers_match_discord_pys() -> None:
    assert connection.EXECUTE_TRANSITION == DiscordVoiceWebSocket.DAVE_EXECUTE_TRANSITION
    assert connection.PREPARE_EPOCH == DiscordVoiceWebSocket.DAVE_PREPARE_EPOCH
    assert connection.EXTERNAL_SENDER == DiscordVoiceWebSocket.MLS_EXTERNAL_SENDER
    assert connection.PROPOSALS == DiscordVoiceWebSocket.MLS_PROPOSALS
    assert connection.ANNOUNCE_COMMIT == DiscordVoiceWebSocket.MLS_ANNOUNCE_COMMIT_TRANSITION
    assert connection.WELCOME == DiscordVoiceWebSocket.MLS_WELCOME
    assert connection.CLIENT_DISCONNECT == DiscordVoiceWebSocket.CLIENT_DISCONNECT
