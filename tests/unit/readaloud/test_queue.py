"""The read-aloud queue: authors take turns, each author's order is kept, the hold, edits, deletions, bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.readaloud.queue import FairQueue
from tests.support.properties import examples


def drain(queue: FairQueue[str], now: float = 100.0) -> list[str]:
    popped = []
    while (entry := queue.pop_ready(now)) is not None:
        popped.append(entry.payload)
    return popped


def test_authors_take_turns_and_keep_their_own_order() -> None:
    queue: FairQueue[str] = FairQueue(limit=20, hold=0)
    for message_id, (author, text) in enumerate([(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (2, "b2"), (3, "c1")]):
        queue.push(message_id, author, text, now=0)
    assert drain(queue) == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_an_author_who_arrives_late_is_served_before_the_flooder_goes_again() -> None:
    queue: FairQueue[str] = FairQueue(limit=20, hold=0)
    for message_id in range(5):
        queue.push(message_id, 1, f"a{message_id}", now=0)
    assert queue.pop_ready(0).payload == "a0"
    queue.push(10, 2, "b0", now=0)
    assert drain(queue)[:2] == ["b0", "a1"]


def test_messages_wait_for_the_hold_and_the_earliest_time_is_known() -> None:
    queue: FairQueue[str] = FairQueue(limit=20, hold=1.0)
    queue.push(1, 1, "a", now=10.0)
    queue.push(2, 2, "b", now=10.5)
    assert queue.pop_ready(10.9) is None and queue.next_eligible_at() == 11.0
    assert queue.pop_ready(11.0).payload == "a"
    assert queue.pop_ready(11.2) is None and queue.next_eligible_at() == 11.5
    assert queue.peek_ready(11.5).payload == "b" and len(queue) == 1


def test_an_edit_replaces_the_text_and_restarts_the_hold() -> None:
    queue: FairQueue[str] = FairQueue(limit=20, hold=1.0)
    queue.push(1, 1, "old", now=0.0)
    assert queue.update(1, "new", now=0.8)
    assert queue.pop_ready(1.5) is None
    assert queue.pop_ready(1.8).payload == "new"
    assert not queue.update(1, "gone", now=2.0)  # already taken: edits no longer matter


def test_a_deleted_message_is_never_returned() -> None:
    queue: FairQueue[str] = FairQueue(limit=20, hold=0)
    for message_id in range(3):
        queue.push(message_id, 1, f"a{message_id}", now=0)
    assert queue.remove(1).payload == "a1"
    assert queue.remove(1) is None and queue.remove(99) is None
    assert drain(queue) == ["a0", "a2"]


def test_when_full_the_oldest_message_of_the_loudest_author_goes() -> None:
    queue: FairQueue[str] = FairQueue(limit=4, hold=0)
    queue.push(1, 1, "a1", now=0)
    queue.push(2, 2, "b1", now=1)
    queue.push(3, 2, "b2", now=2)
    queue.push(4, 1, "a2", now=3)
    dropped = queue.push(5, 3, "c1", now=4)  # authors 1 and 2 tie at two: author 1's oldest is older
    assert dropped is not None and dropped.payload == "a1"
    dropped = queue.push(6, 2, "b3", now=5)
    assert dropped is not None and dropped.payload == "b1"
    assert len(queue) == 4 and sorted(drain(queue)) == ["a2", "b2", "b3", "c1"]


def test_the_message_being_synthesized_ahead_is_not_dropped_for_room() -> None:
    queue: FairQueue[str] = FairQueue(limit=3, hold=0)
    for message_id in range(3):
        queue.push(message_id, 1, f"a{message_id}", now=message_id)
    queue.protect(0)
    dropped = queue.push(3, 2, "b0", now=3)
    assert dropped is not None and dropped.payload == "a1"
    assert drain(queue) == ["a0", "b0", "a2"]


def test_order_follows_message_ids_not_arrival_and_replays_are_ignored() -> None:
    queue: FairQueue[str] = FairQueue(limit=20, hold=0)
    queue.push(20, 1, "second", now=0)
    queue.push(10, 1, "first", now=0)
    assert queue.push(20, 1, "replayed", now=0) is None and len(queue) == 2
    assert drain(queue) == ["first", "second"]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(1, 4)),
        st.tuples(st.just("pop"), st.just(0)),
        st.tuples(st.just("delete"), st.integers(0, 60)),
        st.tuples(st.just("protect"), st.integers(0, 60)),
    ),
    max_size=80,
)


@settings(max_examples=examples(300), deadline=None)
@given(operations, st.integers(1, 8))
def test_nothing_is_lost_order_is_kept_and_no_author_is_served_twice_while_another_waits(
    ops: list[tuple[str, int]], limit: int
) -> None:
    queue: FairQueue[int] = FairQueue(limit=limit, hold=0)
    pushed: list[int] = []
    popped: list[tuple[int, int]] = []  # (author, message id)
    removed: set[int] = set()
    passed_over: set[int] = set()  # others' messages that were waiting when the last pop served someone
    for kind, value in ops:
        if kind == "push":
            message_id = len(pushed)
            pushed.append(value)
            if (dropped := queue.push(message_id, value, message_id, now=0)) is not None:
                removed.add(dropped.message_id)
        elif kind == "pop":
            if (entry := queue.pop_ready(0)) is not None:
                if popped and popped[-1][0] == entry.author_id:
                    still_waiting = [m for m in passed_over if m in queue]
                    assert not still_waiting, "an author was served twice while someone else waited"
                popped.append((entry.author_id, entry.message_id))
                passed_over = {m for m in range(len(pushed)) if m in queue and pushed[m] != entry.author_id}
        elif kind == "protect":
            queue.protect(value)
        elif (entry := queue.remove(value)) is not None:
            removed.add(entry.message_id)
        assert len(queue) <= limit
    left = [entry.message_id for entry in iter(lambda: queue.pop_ready(0), None)]
    taken = [message_id for _, message_id in popped] + left
    assert sorted(taken + list(removed)) == list(range(len(pushed)))  # each exactly once
    for author in range(1, 5):
        own = [m for a, m in popped if a == author]
        assert own == sorted(own)
