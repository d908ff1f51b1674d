"""``bot.voice.connection`` speaks the voice gateway's DAVE opcodes with discord.py's own numbers (the
internals it overrides are checked in ``tests/unit/test_discord_internals.py``)."""

from __future__ import annotations

from discord.gateway import DiscordVoiceWebSocket

from bot.voice import connection


def test_the_op_numbers_match_discord_pys() -> None:
    assert connection.EXECUTE_TRANSITION == DiscordVoiceWebSocket.DAVE_EXECUTE_TRANSITION
    assert connection.PREPARE_EPOCH == DiscordVoiceWebSocket.DAVE_PREPARE_EPOCH
    assert connection.EXTERNAL_SENDER == DiscordVoiceWebSocket.MLS_EXTERNAL_SENDER
    assert connection.PROPOSALS == DiscordVoiceWebSocket.MLS_PROPOSALS
    assert connection.ANNOUNCE_COMMIT == DiscordVoiceWebSocket.MLS_ANNOUNCE_COMMIT_TRANSITION
    assert connection.WELCOME == DiscordVoiceWebSocket.MLS_WELCOME
    assert connection.CLIENT_DISCONNECT == DiscordVoiceWebSocket.CLIENT_DISCONNECT
