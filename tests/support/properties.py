"""How many generated inputs a property test (hypothesis) tries.

The everyday run, CI included, tries a fifth of a test's full count (at least 100, hypothesis's own default):
the full counts cost about 45 s more CPU, and in a full run each of the longest held a worker for over a
minute, for cases the smaller count and the pinned ``@example`` cases mostly find too.
``SPEECHBOT_TEST_THOROUGH=1`` runs the full counts (before a release, or after changing ``bot.text``)."""

from __future__ import annotations

import os

THOROUGH_VARIABLE = "SPEECHBOT_TEST_THOROUGH"


def examples(full: int) -> int:
    """``full`` in a thorough run, else a fifth of it (never fewer than 100, nor more than ``full``)."""
    if os.environ.get(THOROUGH_VARIABLE, "").strip() not in ("", "0"):
        return full
    return min(full, max(100, full // 5))
