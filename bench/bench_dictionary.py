"""How long the pronunciation dictionary can hold the event loop: the worst accepted dictionary on the longest
message, against the same dictionary on the engine and rules the bot used before (stdlib ``re``, no timeout,
the old cost cap).

Run: ``python bench/bench_dictionary.py [runs]``. The dictionary is the server maximum (500 entries), every
entry a pattern the validator accepts but that backtracks as much as it allows (one open-ended repetition
that never finds its end), applied to a 4,096-character message that makes each of them try every position.
Reported: milliseconds per message (the loop is blocked for exactly that long: the dictionary runs on it),
median and worst of ``runs``, and the ratio old/new in the same run. Target: ≤ 20 ms worst.
"""

from __future__ import annotations

import re
import statistics
import sys
import time

from bot.text.dictionary import MAX_ENTRIES, MAX_INPUT_CHARS, DictionaryEntry, apply_dictionary, validate_entry

#: Accepted by the validator; each is quadratic on a message of "a"s (it never finds its "b").
WORST_ACCEPTED = [r"a.*b", r"a[a-z]*b", r"\w+b", r"a[a-z]{1,24}[a-z]{1,24}b"]
#: The pattern the old cost cap accepted that stalled the loop for over a second.
OLD_WORST = r"[a-z]{1,24}[a-z]{1,24}[a-z]{1,24}#"
MESSAGE = "a" * MAX_INPUT_CHARS


def new_dictionary() -> list[DictionaryEntry]:
    entries = [DictionaryEntry(WORST_ACCEPTED[i % len(WORST_ACCEPTED)] + str(i), "x", is_regex=True)
               for i in range(MAX_ENTRIES)]
    for entry in entries:
        validate_entry(entry)  # raises if the rules would refuse it: the benchmark measures accepted ones only
    return entries


def old_apply(text: str, patterns: list[re.Pattern[str]], budget: float = 0.05) -> str:
    """The previous apply_dictionary: ``re``, and the time budget checked only between entries."""
    deadline = time.monotonic() + budget
    for index, pattern in enumerate(patterns):
        if index and time.monotonic() > deadline:
            break
        text = pattern.sub("x", text)
    return text


def timed(call: object, runs: int) -> tuple[list[float], list[float]]:
    """Wall ms (what the loop waits, preemption by other processes included) and this thread's CPU ms."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        call()  # type: ignore[operator]
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return wall, cpu


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(0.95 * len(samples)) - 1)]


def main(runs: int = 20) -> None:
    new = new_dictionary()
    apply_dictionary(MESSAGE, new)  # compile once (cached), as on a server's second message
    old_patterns = [re.compile(OLD_WORST, re.IGNORECASE)] + [re.compile(e.pattern, re.IGNORECASE) for e in new]
    message = "abcdefghij" * (MAX_INPUT_CHARS // 10)  # the old worst pattern's best victim
    new_ms = timed(lambda: apply_dictionary(MESSAGE, new), runs)
    new_ms_letters = timed(lambda: apply_dictionary(message, new), runs)
    old_ms = timed(lambda: old_apply(message, old_patterns), max(3, runs // 5))
    print(f"{'dictionary':<62} {'p50':>6} {'p95':>6} {'max':>6} {'CPU max':>8}  (ms)")
    for label, (wall, cpu) in (
        ("now: 500 worst accepted entries, 4,096 a's", new_ms),
        ("now: the same on 4,096 letters a-j", new_ms_letters),
        ("before: re, old cost cap, [a-z]{1,24}×3# first, 4,096 letters", old_ms),
    ):
        print(f"{label:<62} {statistics.median(wall):6.1f} {p95(wall):6.1f} {max(wall):6.1f} {max(cpu):8.1f}")
    print(f"\nbefore/now (wall medians) {statistics.median(old_ms[0]) / statistics.median(new_ms_letters[0]):.0f}×")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
