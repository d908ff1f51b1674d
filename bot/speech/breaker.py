"""A circuit breaker in front of the speech endpoint.

When the endpoint keeps failing (5xx, timeouts, connection errors), every new request would wait through its
own retries and time out too, and a busy server would pile up requests behind a dead service. After
``failure_threshold`` failures in a row the breaker opens: requests fail at once with a clear message for
``cooldown`` seconds; then one trial request is let through, and its outcome closes or re-opens the breaker.
Refusals that say nothing about the service's health (bad input, a rejected key, no credit) do not count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.i18n import N_, Text
from bot.speech.errors import SpeechError, SpeechRejectedError, SpeechServiceError, SpeechValidationError
from bot.speech.models import SpeechBackend, SpeechRequest, SpeechStream

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Counts consecutive service failures; ``allow()`` says whether a request may go out now."""

    def __init__(
        self, *, failure_threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def seconds_left(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """True when closed, or when the cool-down is over and no other trial request is out."""
        if self._opened_at is None:
            return True
        if self.seconds_left() > 0 or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("speech endpoint recovered; circuit closed")
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_in_flight = False
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self._opened_at is None:
                log.warning(
                    "speech endpoint failed %d times in a row; failing fast for %.0f s", self._failures, self.cooldown
                )
            self._opened_at = self._clock()

    def record_neutral(self) -> None:
        """An outcome that says nothing about the service (bad input, no credit): just end a trial."""
        self._trial_in_flight = False


def is_service_failure(error: SpeechError) -> bool:
    """5xx, 408/409, timeouts, connection failures and non-audio answers: the service is unwell. Refusals
    (4xx, invalid input caught before sending) are not."""
    if isinstance(error, (SpeechValidationError, SpeechRejectedError)):  # a refusal, even one sent as a 5xx
        return False
    return error.status is None or error.status >= 500 or error.status in (200, 408, 409)


class BreakerSpeechBackend:
    """A :class:`~bot.speech.models.SpeechBackend` that consults a :class:`CircuitBreaker` before ``inner``.

    The breaker judges opening a stream (where the client's retries end); a stream that breaks later is
    already reported to the user by the player.
    """

    def __init__(self, inner: SpeechBackend, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.name = inner.name

    async def open(self, request: SpeechRequest) -> SpeechStream:
        if not self.breaker.allow():
            wait = max(1, round(self.breaker.seconds_left()))
            raise SpeechServiceError(
                Text(N_("The speech service is failing right now, so I'm pausing requests for about {seconds} s."),
                     {"seconds": wait}),
                retryable=True,
                retry_after=float(wait),
            )
        try:
            stream = await self.inner.open(request)
        except SpeechError as error:
            if is_service_failure(error):
                self.breaker.record_failure()
            else:
                self.breaker.record_neutral()
            raise
        except BaseException:
            self.breaker.record_neutral()
            raise
        self.breaker.record_success()
        return stream

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()
