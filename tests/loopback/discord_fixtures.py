"""Pytest fixtures for the loopback Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

if TYPE_CHECKING:  # imported by the fixture: pytest's main process under xdist never needs the doubles
    from tests.loopback.discord import DiscordEmulator


@pytest_asyncio.fixture
async def discord_emulator() -> AsyncIterator[DiscordEmulator]:
    """A started emulator; the test fails at teardown if the bot violated the protocol."""
    from tests.loopback.discord import DiscordEmulator

    emulator = DiscordEmulator(token="test-token")
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.close()
    if emulator.failures:
        pytest.fail("loopback Discord recorded protocol violations:\n" + "\n".join(emulator.failures))
    in_the_clear = [(s.guild_id, len(s.plaintext_frames())) for s in emulator.voice.server.sessions
                    if s.plaintext_frames()]
    if in_the_clear and not emulator.voice.plaintext_expected:
        pytest.fail(f"audio sent in the clear while the call was end-to-end encrypted (guild, frames): {in_the_clear}")
