"""The audio cache: one for the whole bot, a :class:`~bot.speech.models.SpeechBackend` around the real one.

An entry is keyed by a SHA-256 of everything that changes the audio: where it comes from (backend, endpoint
and model), voice, speed, format, instructions and text. Neither the text nor the key is kept or logged: the
memory and the disk are indexed by the hash, and files are named after it.

* **Memory**: least recently used first out, bounded in bytes of audio.
* **Disk** (optional, and only for callers that want it: read-aloud keeps chat audio in memory): one file per
  entry under the cache directory, bounded in bytes, least recently used first out. The order survives
  restarts: a hit touches the file's mtime, and the start-up scan sorts by it. Files are written to a
  temporary name and renamed (atomic), off the event loop; each carries a header with the key's hash, the
  sniffed format, the length and a SHA-256 of the audio, so a corrupt, truncated or misplaced file is
  recognised when read, removed, and treated as a miss.
* **In flight**: a miss opens the real stream in a background task that tees every chunk into memory while the
  caller (and anyone asking for the same audio meanwhile) reads them as they arrive: voice playback starts with
  the first bytes, a second identical request replays the bytes so far and then follows. A stream that fails or
  is cut is never cached, and everyone reading it gets the error. When everyone reading a stream has closed it
  before the end (a skipped item), the download is stopped and nothing is cached.

A hit never reaches the wrapped backend, so it is not a speech request in the metrics, is served even while
the circuit breaker fails requests fast, and (see :class:`Origin`) tells its caller that nothing was sent.

Its parts: :mod:`.keys` (the key, :class:`Origin`, :class:`CacheStats`), :mod:`.disk` (the file format and
file operations), :mod:`.inflight` (sharing a download) and :mod:`.audio_cache` (:class:`AudioCache`, which
decides what is kept and wires the others together).
"""

from bot.speech.cache.audio_cache import AudioCache
from bot.speech.cache.disk import DiskStore
from bot.speech.cache.inflight import SynthesisAbandoned
from bot.speech.cache.keys import MIB, CacheSource, CacheStats, Origin, cache_key

__all__ = ["MIB", "AudioCache", "CacheSource", "CacheStats", "DiskStore", "Origin", "SynthesisAbandoned", "cache_key"]
