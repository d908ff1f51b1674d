"""The in-process bot fixture (see :mod:`tests.unit.cogs.in_process`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.loopback.discord import DiscordEmulator
from tests.unit.cogs.in_process import ErrorRecords, InProcessBot, running_in_process


@pytest_asyncio.fixture
async def in_process_bot(discord_emulator: DiscordEmulator, tmp_path: Path) -> AsyncIterator[InProcessBot]:
    """The bot, ready, with its commands synced to the emulator's guild. A test that provokes an error on purpose
    takes it out of ``errors.records``; any other error logged fails the test."""
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    try:
        async with running_in_process(discord_emulator, tmp_path, errors) as running:
            yield running
    finally:
        logging.getLogger().removeHandler(errors)
    # What a user's mistake or a service's failure may never cause: an error with a traceback in the log.
    assert not errors.records, "errors logged:\n" + "\n".join(r.getMessage() for r in errors.records)
