"""Synthesis cache: identical requests are synthesized once.

Keyed by everything that changes the audio (model, voice, speed, format, instructions, text), so a repeated
"gg" or the same announcement costs nothing after the first time; requests already in flight are shared,
so a prefetch and the playback that follows it send one request. Bounded in bytes, least recently used
first out. Audio only lives in memory; the key holds the text, so nothing here is ever logged.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from bot.speech.models import SpeechBackend, SpeechRequest, SynthesizedAudio, synthesize

#: Default memory bound: about 10 minutes of 32 kbit/s Opus speech.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int


class SynthesisCache:
    """``get(request)`` returns the whole audio and whether this call sent the request (for usage counting)."""

    def __init__(self, backend: SpeechBackend, model: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._backend = backend
        self._model = model
        self._max_bytes = max_bytes
        self._audio: OrderedDict[tuple[str, SpeechRequest], SynthesizedAudio] = OrderedDict()
        self._bytes = 0
        self._in_flight: dict[tuple[str, SpeechRequest], asyncio.Future[SynthesizedAudio]] = {}
        self._hits = 0
        self._misses = 0

    @property
    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, len(self._audio), self._bytes)

    def has(self, request: SpeechRequest) -> bool:
        """True when ``request`` would be served without sending anything new (cached or in flight)."""
        key = (self._model, request)
        return key in self._audio or key in self._in_flight

    async def get(self, request: SpeechRequest) -> tuple[SynthesizedAudio, bool]:
        """The audio for ``request`` and True when this call synthesized it (False: cache or shared request).

        A failure is raised to every caller sharing the request and is not cached.
        """
        key = (self._model, request)
        if (audio := self._audio.get(key)) is not None:
            self._audio.move_to_end(key)
            self._hits += 1
            return audio, False
        if (pending := self._in_flight.get(key)) is not None:
            self._hits += 1
            return await asyncio.shield(pending), False
        self._misses += 1
        future: asyncio.Future[SynthesizedAudio] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            audio = await synthesize(self._backend, request)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: sharing callers re-raise it, nobody else must
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._in_flight[key]
        future.set_result(audio)
        self._store(key, audio)
        return audio, True

    def _store(self, key: tuple[str, SpeechRequest], audio: SynthesizedAudio) -> None:
        size = len(audio.data)
        if size > self._max_bytes:
            return
        self._audio[key] = audio
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, evicted = self._audio.popitem(last=False)
            self._bytes -= len(evicted.data)
