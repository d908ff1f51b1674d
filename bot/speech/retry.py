"""When and how long to wait before trying a failed speech request again (the speech note §4.3).

Like the official SDK: retry 408, 409, 429 and 5xx, let ``x-should-retry`` override, honour ``retry-after-ms``
/ ``Retry-After`` up to two minutes, otherwise back off exponentially with jitter. Unlike it, a server asking
for a longer wait is not retried at once, and request or configuration errors (400, 401, 403, 404, 422, an
exhausted quota) are never retried whatever ``x-should-retry`` says.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Statuses that mean "this request is wrong" or "the bot is misconfigured": repeating it cannot help.
NEVER_RETRY = frozenset({400, 401, 403, 404, 422})
RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying: attempts in all, total seconds spent, backoff base and cap, longest honoured
    ``Retry-After`` (a server asking for more is not retried at once)."""

    max_attempts: int = 3
    max_total: float = 30.0
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 120.0

    def delay(self, retry: int, retry_after: float | None, rng: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before retry number ``retry`` (1 for the first), or None when it must not happen."""
        if retry_after is not None:
            return retry_after if 0 <= retry_after <= self.max_retry_after else None
        backoff = min(self.base_delay * 2.0 ** (retry - 1), self.max_delay)
        return backoff * (1 - 0.25 * rng())


def is_retryable(status: int, headers: Mapping[str, str], *, quota: bool = False) -> bool:
    """Whether an error answer may be retried: never for request/config errors or an exhausted quota."""
    if status in NEVER_RETRY or quota:
        return False
    override = headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return status in RETRY_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The delay asked for by ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date), else None."""
    if (ms := _seconds(headers.get("retry-after-ms"))) is not None:
        return ms / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _seconds(value: str | None) -> float | None:
    """A non-negative finite number, or None for anything else (garbage headers are ignored)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
