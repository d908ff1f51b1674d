"""Pytest fixtures for the loopback speech endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported by the fixture: pytest's main process under xdist never needs the doubles
    from tests.loopback.speech_server import SpeechEndpoint

#: The key the ``speech_endpoint`` fixture expects; distinctive, so a leak is easy to find in any output.
SPEECH_TEST_KEY = "sk-test-SECRETKEY-0123456789"


@pytest.fixture
async def speech_endpoint() -> AsyncIterator[SpeechEndpoint]:
    """A strict OpenAI-compatible endpoint serving real speech; the test fails if the bot broke the protocol."""
    from tests.loopback.speech_server import SpeechEndpoint

    endpoint = SpeechEndpoint(api_key=SPEECH_TEST_KEY)
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.close()
    if endpoint.failures:
        pytest.fail("The speech endpoint saw protocol violations:\n" + "\n".join(endpoint.failures))
