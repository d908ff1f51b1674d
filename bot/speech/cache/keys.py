"""What identifies cached audio and what the cache reports: the key, where each answer came from, the counts.

Shared by the cache's parts (:mod:`.disk` knows nothing of these; :mod:`.inflight` records an :class:`Origin`;
:mod:`.audio_cache` counts them) and by its callers (failover, metrics, ``/usage``), which import them from
:mod:`bot.speech.cache`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from bot.audio.formats import AudioFormat
from bot.speech.models import SpeechBackend, SpeechRequest

MIB = 1024 * 1024
#: Bumped whenever the key's recipe changes, so old files are simply never found again (and age out).
_KEY_VERSION = 1


class Origin(StrEnum):
    """Where the audio of one ``open`` came from; only ``SENT`` means this call sent a request."""

    MEMORY = "memory"
    DISK = "disk"
    SHARED = "shared"  # joined an identical request already on its way (or just finished)
    SENT = "sent"

    @property
    def sent(self) -> bool:
        return self is Origin.SENT


@dataclass(frozen=True, slots=True)
class CacheSource:
    """Who makes the audio on a miss, and the namespace its entries are kept under (one per engine, so a key
    always says which engine made the audio)."""

    backend: SpeechBackend
    namespace: str


@dataclass(frozen=True, slots=True)
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    shared_hits: int = 0
    misses: int = 0
    memory_entries: int = 0
    memory_bytes: int = 0
    disk_entries: int = 0
    disk_bytes: int = 0

    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits + self.shared_hits

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    def summary(self) -> str:
        """One log line: counts and sizes only."""
        rate = "n/a" if self.hit_rate is None else f"{self.hit_rate:.0%}"
        return (
            f"audio cache: {self.hits} hits (memory {self.memory_hits}, disk {self.disk_hits}, shared "
            f"{self.shared_hits}), {self.misses} misses, hit rate {rate}; memory {size_text(self.memory_bytes)} in "
            f"{self.memory_entries} entries, disk {size_text(self.disk_bytes)} in {self.disk_entries} entries"
        )



def size_text(n: int) -> str:
    """A byte count for a log line (KiB below one MiB)."""
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1024:.1f} KiB"


def cache_key(namespace: str, request: SpeechRequest) -> str:
    """The hex SHA-256 naming ``request``'s audio. ``namespace`` says who makes it (backend, endpoint, model)."""
    fields = [
        _KEY_VERSION,
        namespace,
        request.voice,
        AudioFormat(request.format).value,
        float(request.speed),
        request.instructions or "",
        request.text,
    ]
    if request.language:  # only then: the keys of requests without a language stay what they were
        fields.append(request.language)
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()

