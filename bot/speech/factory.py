"""Choosing the speech engines from the settings: the primary (``auto``: the API when a key is set, else offline;
a ``gpt-realtime...`` model: the Realtime API) and the fallbacks of ``SPEECH_FALLBACK``."""

from __future__ import annotations

import logging

import aiohttp

from bot.config import Fallback, Settings
from bot.speech.errors import SpeechUnavailableError
from bot.speech.failover import Engine
from bot.speech.models import SpeechBackend
from bot.speech.observer import SpeechObserver

log = logging.getLogger(__name__)

#: The cache namespace of the offline engine: its one model and voice.
LOCAL_NAMESPACE = "local:piper:en_US-joe-medium"
#: How replies name the engines when one speaks in another's place.
LOCAL_LABEL = "the offline voice"
SERVICE_LABEL = "the speech service"


def make_engines(
    settings: Settings, session: aiohttp.ClientSession, observer: SpeechObserver | None = None
) -> list[Engine]:
    """The primary engine, then the fallbacks; raises SpeechUnavailableError saying what to install or set."""
    primary = Engine(settings.engine_name, LOCAL_LABEL if settings.uses_local_engine else SERVICE_LABEL,
                     cache_namespace(settings), _primary_backend(settings, session, observer))
    engines = [primary]
    for name in fallback_names(settings):
        if name is Fallback.LOCAL:
            from bot.speech.local import INSTALL_HINT, LocalSpeechEngine

            if not LocalSpeechEngine.is_installed():
                raise SpeechUnavailableError(
                    f"SPEECH_FALLBACK=local needs the offline engine. Install it with: {INSTALL_HINT}  "
                    "(or set SPEECH_FALLBACK=none)."
                )
            local = LocalSpeechEngine(settings.speech_voices, models=dict(settings.local_voices))
            engines.append(Engine("local", LOCAL_LABEL, LOCAL_NAMESPACE, local))
    return engines


def fallback_names(settings: Settings) -> tuple[Fallback, ...]:
    """``SPEECH_FALLBACK`` resolved: by default the offline engine when it is installed; never the primary."""
    from bot.speech.local import LocalSpeechEngine

    names = settings.speech_fallback
    if names is None:
        names = (Fallback.LOCAL,) if LocalSpeechEngine.is_installed() else ()
    return tuple(name for name in names if name.value != settings.engine_name)


def make_speech_backend(
    settings: Settings, session: aiohttp.ClientSession, observer: SpeechObserver | None = None
) -> SpeechBackend:
    """The primary engine alone (no failover, no cache): benchmarks and tools."""
    return _primary_backend(settings, session, observer)


def _primary_backend(
    settings: Settings, session: aiohttp.ClientSession, observer: SpeechObserver | None
) -> SpeechBackend:
    if settings.uses_local_engine:
        from bot.speech.local import INSTALL_HINT, LocalSpeechEngine

        if not LocalSpeechEngine.is_installed():
            raise SpeechUnavailableError(
                "No speech backend: SPEECH_API_KEY is empty and the offline engine is not installed. "
                f"Install it with: {INSTALL_HINT}  (or set SPEECH_API_KEY)."
            )
        return LocalSpeechEngine(settings.speech_voices, models=dict(settings.local_voices))

    from bot.speech.breaker import BreakerSpeechBackend, CircuitBreaker
    from bot.speech.client import OpenAISpeechClient, Timeouts

    timeouts = Timeouts(first_byte=settings.speech_timeout, between_chunks=settings.speech_timeout)
    client: SpeechBackend
    if settings.uses_realtime_engine:
        from bot.speech.realtime import RealtimeSpeechEngine

        client = RealtimeSpeechEngine(
            session,
            base_url=settings.speech_api_base_url,
            api_key=settings.speech_api_key,
            model=settings.speech_model,
            voices=settings.speech_voices,
            default_voice=settings.default_voice,
            timeouts=timeouts,
            max_sessions=settings.realtime_sessions,
            observer=observer,
        )
    else:
        client = OpenAISpeechClient(
            session,
            base_url=settings.speech_api_base_url,
            api_key=settings.speech_api_key,
            model=settings.speech_model,
            voices=settings.speech_voices,
            timeouts=timeouts,
        )
    breaker = CircuitBreaker(
        failure_threshold=settings.speech_breaker_failures, cooldown=settings.speech_breaker_cooldown
    )
    return BreakerSpeechBackend(client, breaker)


def cache_namespace(settings: Settings) -> str:
    """What, besides the request, decides the primary engine's audio: the offline engine, or the API (which
    protocol), the endpoint and its model. Part of every audio cache key, so switching endpoint, model or
    engine never serves the old one's audio."""
    if settings.uses_local_engine:
        return LOCAL_NAMESPACE
    return f"{settings.engine_name}:{settings.speech_api_base_url}:{settings.speech_model}"
