"""The circuit breaker in front of the speech endpoint: unit rules, and the real bot failing fast end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.speech.breaker import CircuitBreaker
from tests.bot_process import running_bot
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_lets_one_trial_through_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.allow() and not breaker.is_open
    breaker.record_failure()
    assert breaker.is_open and not breaker.allow() and breaker.seconds_left() == 10

    clock.now = 10.0
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()  # the trial failed: open again for a full cool-down
    clock.now = 15.0
    assert not breaker.allow() and breaker.seconds_left() == 5

    clock.now = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert not breaker.is_open and breaker.allow() and breaker.allow()


def test_a_success_resets_the_count_and_neutral_outcomes_do_not_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=10, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_neutral()
    assert not breaker.is_open


async def test_the_bot_fails_fast_while_the_endpoint_keeps_failing_and_recovers_by_itself(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    env = {
        "SPEECH_API_BASE_URL": speech_endpoint.base_url,
        "SPEECH_API_KEY": SPEECH_TEST_KEY,
        "SPEECH_BREAKER_FAILURES": "2",
        "SPEECH_BREAKER_COOLDOWN": "2",
        "SPEECH_FALLBACK": "none",  # the failover would speak offline instead (tests/test_e2e_realtime.py)
    }

    async def speak() -> str:
        interaction = await emu.invoke("speak", {"text": "Hello world."}, user=emu.user, guild=emu.guild,
                                       channel=emu.text_channel)
        message = await interaction.wait_message(timeout=60)
        return message.content if message.ephemeral else "ok"

    async with running_bot(emu, tmp_path, **env):
        speech_endpoint.inject(Fault(status=503, times=100))
        for _ in range(2):
            assert "having problems" in await speak()
        sent = len(speech_endpoint.requests)
        assert "pausing requests" in await speak()
        assert len(speech_endpoint.requests) == sent  # failed fast: nothing reached the endpoint

        speech_endpoint.clear_faults()
        await asyncio.sleep(2.2)  # the cool-down (a clock test above checks the rule; this checks the wiring)
        assert await speak() == "ok"
        assert await speak() == "ok"
