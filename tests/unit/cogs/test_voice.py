"""``/join``, ``/leave``, ``/skip`` in-process: refusals that need no voice connection (the e2e tests join)."""

from __future__ import annotations

import pytest

from tests.unit.cogs.in_process import InProcessBot


@pytest.mark.parametrize("command", ["leave", "skip", "clear"])
async def test_steering_a_session_that_does_not_exist_is_refused_privately(
    in_process_bot: InProcessBot, command: str
) -> None:
    attempt = await in_process_bot.emu.invoke(command, {})
    reply = await attempt.wait_message()
    assert reply.ephemeral and reply.content == "I'm not in a voice channel."
    assert not in_process_bot.emu.voice_connected()


async def test_join_from_outside_a_voice_channel_says_what_to_do(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu  # bob is in no voice channel
    attempt = await emu.invoke("join", {}, user=emu.other_user)
    reply = await attempt.wait_message()
    assert reply.ephemeral and reply.content == "Join a voice channel first, then try again."
