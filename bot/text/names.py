"""When to say who is speaking.

"Alice said" before every message is tiresome in a conversation, so the prefix is dropped for consecutive
messages of the same author within a window (Discord-TTS and the yomiage bots do the same).
"""

from __future__ import annotations

from datetime import datetime, timedelta

Instant = float | datetime
Span = float | timedelta


def should_prefix_name(
    author_id: int, now: Instant, last_author_id: int | None, last_time: Instant | None, window: Span
) -> bool:
    """True unless the previous message read was by the same author less than ``window`` ago.

    Times are seconds (e.g. ``time.monotonic()``) or datetimes, windows seconds or timedeltas. A previous
    message "in the future" (clock change) counts as long ago.
    """
    if last_author_id is None or last_time is None or author_id != last_author_id:
        return True
    elapsed = _seconds(now) - _seconds(last_time)
    limit = window.total_seconds() if isinstance(window, timedelta) else float(window)
    return not 0 <= elapsed < limit


def _seconds(instant: Instant) -> float:
    return instant.timestamp() if isinstance(instant, datetime) else float(instant)
