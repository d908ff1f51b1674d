"""A fair, bounded, moderation-aware queue of messages waiting to be read in one guild.

Fair: authors take turns (round-robin), so one person's flood cannot starve the others; each author's own
messages keep their order. Bounded: when full, the oldest message of the author with the most waiting is
dropped (a flood pays for itself). Held: a message becomes eligible only ``hold`` seconds after it arrived (or
was last edited), which gives AutoMod and moderators time to delete it before any character is synthesized.

Pure and synchronous (times are passed in), so the ordering rules are tested without an event loop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Entry(Generic[T]):
    message_id: int
    author_id: int
    order: int
    payload: T
    arrived_at: float
    eligible_at: float
    protected: bool = False  # being synthesized ahead: dropping it for room would waste the characters


class FairQueue(Generic[T]):
    """Entries per author in message order; the author whose turn came longest ago (or never) goes next."""

    def __init__(self, *, limit: int, hold: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self.hold = hold
        self._authors: dict[int, deque[Entry[T]]] = {}
        self._by_id: dict[int, Entry[T]] = {}
        # When each author was last served (a pop counter); kept while anything waits, so that an author who
        # empties their queue and posts again does not jump ahead of those still waiting for a turn.
        self._served: dict[int, int] = {}
        self._ticks = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, message_id: int) -> bool:
        return message_id in self._by_id

    def get(self, message_id: int) -> Entry[T] | None:
        return self._by_id.get(message_id)

    def waiting(self, author_id: int) -> int:
        return len(self._authors.get(author_id, ()))

    def push(
        self, message_id: int, author_id: int, payload: T, now: float, order: int | None = None,
        hold: float | None = None,
    ) -> Entry[T] | None:
        """Queue a message; returns the entry dropped to make room, if any (possibly an older one of the same
        author). A message id already queued is ignored (gateway replays). ``hold``: this message's hold, if
        not the queue's (a server's own setting).

        An author's messages are kept in ``order`` (default: the message id, a snowflake, so Discord's order),
        not in the order they were pushed: the checks before pushing take different times per message.
        """
        if message_id in self._by_id:
            return None
        dropped = self._drop_for_room() if len(self._by_id) >= self.limit else None
        held = self.hold if hold is None else hold
        entry = Entry(message_id, author_id, message_id if order is None else order, payload, now, now + held)
        queue = self._authors.setdefault(author_id, deque())
        position = len(queue)
        while position and queue[position - 1].order > entry.order:
            position -= 1
        queue.insert(position, entry)
        self._by_id[message_id] = entry
        return dropped

    def update(self, message_id: int, payload: T, now: float, hold: float | None = None) -> bool:
        """An edit: the new payload replaces the old one and the hold starts again. False if not queued."""
        entry = self._by_id.get(message_id)
        if entry is None:
            return False
        entry.payload = payload
        entry.eligible_at = max(entry.eligible_at, now + (self.hold if hold is None else hold))
        return True

    def remove(self, message_id: int) -> Entry[T] | None:
        """A deletion: forget the message. Returns the removed entry (None if it was not queued)."""
        entry = self._by_id.pop(message_id, None)
        if entry is not None:
            queue = self._authors[entry.author_id]
            queue.remove(entry)
            if not queue:
                del self._authors[entry.author_id]
        return entry

    def clear(self) -> int:
        dropped = len(self._by_id)
        self._authors.clear()
        self._by_id.clear()
        self._served.clear()
        return dropped

    def peek_ready(self, now: float) -> Entry[T] | None:
        """The entry :meth:`pop_ready` would return at ``now``, left in place."""
        best: Entry[T] | None = None
        for queue in self._authors.values():
            head = queue[0]
            if head.eligible_at <= now and (best is None or self._turn(head) < self._turn(best)):
                best = head
        return best

    def pop_ready(self, now: float) -> Entry[T] | None:
        """The next eligible entry: its author's turn came longest ago (or never), ties by message order."""
        entry = self.peek_ready(now)
        if entry is None:
            return None
        queue = self._authors[entry.author_id]
        queue.popleft()
        if not queue:
            del self._authors[entry.author_id]
        del self._by_id[entry.message_id]
        self._ticks += 1
        self._served[entry.author_id] = self._ticks
        if not self._by_id:
            self._served.clear()  # nobody waits: past turns no longer matter
        return entry

    def _turn(self, head: Entry[T]) -> tuple[int, int]:
        return self._served.get(head.author_id, 0), head.order

    def next_eligible_at(self) -> float | None:
        """When the earliest waiting head becomes eligible (None when empty)."""
        return min((queue[0].eligible_at for queue in self._authors.values()), default=None)

    def protect(self, message_id: int) -> None:
        """Keep this entry when room must be made (it is already being synthesized)."""
        if (entry := self._by_id.get(message_id)) is not None:
            entry.protected = True

    def _drop_for_room(self) -> Entry[T]:
        # The loudest author (among equals, the one whose oldest message is oldest) loses their oldest message
        # that is not protected; if every waiting message is protected, simply the loudest's oldest.
        ranked = sorted(self._authors.values(), key=lambda q: (-len(q), q[0].arrived_at))
        victim = next((entry for queue in ranked for entry in queue if not entry.protected), ranked[0][0])
        self.remove(victim.message_id)
        return victim
