"""Engine failover: when the primary speech engine cannot serve, the next one in ``SPEECH_FALLBACK`` speaks.

It applies when the service is down (cannot connect, 5xx after the client's retries, a timeout, the circuit
breaker open), when its model is gone (404, ``model_not_found``/``invalid_model``, an answer saying the model is
deprecated or does not exist) and when it is out of credit. Never on bad input (400), a rejected key (401/403),
a content-policy refusal or a plain rate limit: another engine would hide a mistake the owner or the user must
see, or answer what the service refused. A model that is gone or credit that ran out is not asked again for
``rest`` seconds (its cached audio is still served); an outage is the circuit breaker's business.

Every engine has its own audio-cache namespace, so a key says which engine actually made the audio: the offline
voice's audio is never served as the service's, and once the service is back it is asked again. The operator
is told once per episode (a WARNING when the fallback starts speaking, an INFO when the primary is back) and
counted per request (the observer: ``speechbot_speech_failovers_total{engine,reason}``); the caller gets
:class:`Served`, which says who spoke and why, for its reply and its usage counting.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.i18n import ENGLISH, N_, translate
from bot.speech.cache import AudioCache, CacheSource, CacheStats, Origin
from bot.speech.client import loggable_detail
from bot.speech.errors import (
    SpeechAuthError,
    SpeechConnectionError,
    SpeechError,
    SpeechRateLimitError,
    SpeechRejectedError,
    SpeechServiceError,
    SpeechTimeoutError,
    SpeechUnavailableError,
    SpeechValidationError,
)
from bot.speech.models import SpeechBackend, SpeechRequest, SpeechStream, SynthesizedAudio, read_whole
from bot.speech.observer import SilentObserver, SpeechObserver

log = logging.getLogger(__name__)

#: Seconds a primary whose model is gone or whose credit ran out is left alone before it is tried again.
DEFAULT_REST = 60.0

_GONE_WORDS = re.compile(r"deprecated|does not exist|no longer (available|supported)|has been (shut down|retired)",
                         re.IGNORECASE)
_MODEL_CODES = frozenset({"model_not_found", "invalid_model"})
_QUOTA_CODES = frozenset({"insufficient_quota"})


class FailoverReason(StrEnum):
    OUTAGE = "outage"
    MODEL_GONE = "model_gone"
    NO_CREDIT = "no_credit"
    SWITCHED_OFF = "switched_off"

    @property
    def because(self) -> str:
        """The end of "..., because ..." for a reply."""
        return _BECAUSE[self]


_BECAUSE = {
    FailoverReason.OUTAGE: N_("the speech service is not answering right now"),
    FailoverReason.MODEL_GONE: N_("the speech service no longer offers its model"),
    FailoverReason.NO_CREDIT: N_("the speech service is out of credit"),
    FailoverReason.SWITCHED_OFF: N_("the bot's owner switched it off for now"),
}

#: What a caller hears when every engine is switched off.
ALL_SWITCHED_OFF = N_("Speech is switched off by the bot's owner for now. Please try again later.")



def failover_reason(error: SpeechError) -> FailoverReason | None:
    """Why another engine should speak instead, or None when ``error`` must reach the user as it is."""
    code = error.code or ""
    if isinstance(error, (SpeechValidationError, SpeechAuthError)):
        return None
    if isinstance(error, SpeechRateLimitError):
        return FailoverReason.NO_CREDIT if code in _QUOTA_CODES else None
    if code in _MODEL_CODES or error.status == 404:
        return FailoverReason.MODEL_GONE
    if isinstance(error, SpeechRejectedError):
        said = f"{error.detail or ''} {error.user_message}"
        return FailoverReason.MODEL_GONE if "model" in said.lower() and _GONE_WORDS.search(said) else None
    if isinstance(error, (SpeechServiceError, SpeechConnectionError, SpeechTimeoutError)):
        return FailoverReason.OUTAGE if error.status is None or error.status >= 500 or error.status == 408 \
            else None
    return None


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine as the bot uses it: ``backend`` (breaker and metrics around it), its cache ``namespace`` (what
    decides its audio besides the request) and ``label``, how a reply names it ("the offline voice")."""

    name: str
    label: str
    namespace: str
    backend: SpeechBackend


@dataclass(frozen=True, slots=True)
class Served:
    """One request's audio: the stream, where it came from (cache or sent), which engine made it, and why it
    was not the primary (None when it was)."""

    stream: SpeechStream
    origin: Origin
    engine: Engine
    reason: FailoverReason | None = None

    @property
    def fallback(self) -> bool:
        return self.reason is not None

    def note(self, voice: str, language: str = ENGLISH) -> str | None:
        """For a reply: which voice spoke instead of ``voice``, and why, in ``language``; None when the primary
        spoke."""
        if self.reason is None:
            return None
        return translate(language, "Said by {engine} instead of {voice}, because {reason}.",
                         engine=translate(language, self.engine.label), voice=voice,
                         reason=translate(language, self.reason.because))


class FailoverSpeech:
    """The bot's speech: the audio cache in front of the primary engine, then of each fallback in turn.

    A :class:`~bot.speech.models.SpeechBackend` too (``open``), for callers that need no more than audio.
    """

    def __init__(
        self,
        cache: AudioCache,
        engines: Sequence[Engine],
        *,
        observer: SpeechObserver | None = None,
        rest: float = DEFAULT_REST,
        clock: Callable[[], float] = time.monotonic,
        disabled: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        """``disabled``: the names of the engines the owner switched off (``bot.owner_controls``), asked on every
        request; a switched-off engine is skipped as if it were failing, its cached audio included."""
        if not engines:
            raise ValueError("at least the primary engine is needed")
        self.cache = cache
        self.engines = tuple(engines)
        self.primary = self.engines[0]
        self.name = self.primary.name
        self._observer: SpeechObserver = observer or SilentObserver()
        self._rest = rest
        self._clock = clock
        self._disabled = disabled
        self._resting: tuple[float, FailoverReason] | None = None  # the primary is left alone until then
        self._episode: FailoverReason | None = None  # failing over since the last time the primary served

    # -- the SpeechBackend protocol --

    async def open(self, request: SpeechRequest) -> SpeechStream:
        return (await self.open_tracked(request)).stream

    async def start(self) -> None:
        await self.cache.start()
        for engine in self.engines:
            await engine.backend.start()

    async def close(self) -> None:
        await self.shutdown()
        for engine in self.engines:
            await engine.backend.close()

    # -- more --

    @property
    def stats(self) -> CacheStats:
        return self.cache.stats

    async def shutdown(self) -> None:
        await self.cache.shutdown()

    def has(self, request: SpeechRequest) -> bool:
        """True when the primary's audio for ``request`` would be served without sending anything."""
        if self.primary.name in self._disabled():
            return False
        return self.cache.has(request, namespace=self.primary.namespace)

    async def open_tracked(self, request: SpeechRequest, *, persist: bool = True) -> Served:
        """The audio of ``request`` from the first engine that can make it (cached audio first, per engine).

        Raises the primary's error when it must reach the user (see :func:`failover_reason`) or when no other
        engine could speak either.
        """
        primary = self.primary
        if primary.name in self._disabled():
            return await self._fall_back(request, persist, FailoverReason.SWITCHED_OFF, None)
        reason = self._primary_resting()
        if reason is None or self.has(request):
            try:
                stream, origin = await self.cache.open_tracked(request, persist=persist, source=self._source(primary))
            except SpeechError as error:
                reason = failover_reason(error)
                if reason is None or len(self.engines) == 1:
                    raise
                if reason is not FailoverReason.OUTAGE:
                    self._resting = (self._clock() + self._rest, reason)
                return await self._fall_back(request, persist, reason, error)
            self._recovered()
            return Served(stream, origin, primary)
        assert reason is not None
        return await self._fall_back(request, persist, reason, None)

    async def read_whole(self, request: SpeechRequest, *, persist: bool = True) -> tuple[SynthesizedAudio, Served]:
        """``request``'s whole file (asked once more if a voice model reworded it) and who made it."""
        served: list[Served] = []

        async def open_stream() -> SpeechStream:
            served.append(await self.open_tracked(request, persist=persist))
            return served[-1].stream

        audio = await read_whole(open_stream)
        return audio, served[-1]

    # -- internals --

    def _source(self, engine: Engine) -> CacheSource:
        return CacheSource(engine.backend, engine.namespace)

    def _primary_resting(self) -> FailoverReason | None:
        if self._resting is None or len(self.engines) == 1:
            return None
        until, reason = self._resting
        if self._clock() >= until:
            self._resting = None
            return None
        return reason

    async def _fall_back(
        self, request: SpeechRequest, persist: bool, reason: FailoverReason, error: SpeechError | None
    ) -> Served:
        if self._episode is not reason:
            self._episode = reason
            if reason is FailoverReason.SWITCHED_OFF:
                why = "the owner switched it off"
            elif error is None:
                why = "it is resting after the last failure"
            else:
                why = (f"{type(error).__name__} status={error.status} code={error.code}: "
                       f"{loggable_detail(error.detail, request) or error.user_message}")
            log.warning("speech: %s cannot serve (%s; %s); %s speaks instead until it can",
                        self.primary.name, reason.value, why, " then ".join(e.name for e in self.engines[1:]))
        last: SpeechError | None = error
        disabled = self._disabled()
        for engine in self.engines[1:]:
            if engine.name in disabled:
                continue
            try:
                stream, origin = await self.cache.open_tracked(request, persist=persist, source=self._source(engine))
            except SpeechError as failure:
                log.warning("speech: the fallback %s failed too: kind=%s code=%s", engine.name,
                            type(failure).__name__, failure.code)
                last = last or failure
                continue
            self._observer.failed_over(engine.name, reason.value)
            return Served(stream, origin, engine, reason)
        if last is None:  # every engine left is switched off
            raise SpeechUnavailableError(ALL_SWITCHED_OFF)
        raise last

    def _recovered(self) -> None:
        if self._episode is not None:
            log.info("speech: %s serves again (after %s)", self.primary.name, self._episode.value)
            self._episode = None
