"""The circuit breaker in front of the speech endpoint: its rules on a fake clock (the real bot failing fast end to
end: tests/e2e/test_speech_breaker.py)."""

from __future__ import annotations

from bot.speech.breaker import CircuitBreaker


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
