"""Pytest fixtures for the loopback Realtime API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.loopback.speech_fixtures import SPEECH_TEST_KEY

if TYPE_CHECKING:  # imported by the fixture: pytest's main process under xdist never needs the doubles
    from tests.loopback.realtime_server import RealtimeEndpoint

#: The model the Realtime tests configure: OpenAI's named replacement of the /audio/speech models.
REALTIME_MODEL = "gpt-realtime-2.1-mini"


@pytest.fixture
async def realtime_endpoint() -> AsyncIterator[RealtimeEndpoint]:
    """A strict Realtime API double speaking real speech; the test fails if the bot broke the protocol."""
    from tests.loopback.realtime_server import RealtimeEndpoint

    endpoint = RealtimeEndpoint(api_key=SPEECH_TEST_KEY)
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.close()
    if endpoint.failures:
        pytest.fail("The Realtime endpoint saw protocol violations:\n" + "\n".join(endpoint.failures))
