"""Choosing the speech engines from the settings: the primary (``auto``: the API when a key is set, else offline;
a ``gpt-realtime...`` model: the Realtime API) and the fallbacks of ``SPEECH_FALLBACK``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiohttp

from bot.config import Fallback, Settings
from bot.i18n import N_
from bot.speech.capabilities import EndpointCapabilities, VoiceSource
from bot.speech.errors import SpeechUnavailableError
from bot.speech.failover import Engine
from bot.speech.models import SpeechBackend
from bot.speech.observer import SpeechObserver

if TYPE_CHECKING:
    from bot.speech.probe import CapabilityProbe
    from bot.speech.voices import VoiceRefresher

log = logging.getLogger(__name__)

#: The cache namespace of the offline engine: its one model and voice.
LOCAL_NAMESPACE = "local:piper:en_US-joe-medium"
#: How replies name the engines when one speaks in another's place.
LOCAL_LABEL = N_("the offline voice")
SERVICE_LABEL = N_("the speech service")


def make_engines(
    settings: Settings, session: aiohttp.ClientSession, observer: SpeechObserver | None = None,
    capabilities: EndpointCapabilities | None = None,
) -> list[Engine]:
    """The primary engine, then the fallbacks; raises SpeechUnavailableError saying what to install or set.
    ``capabilities`` is where the /audio/speech client records what its endpoint can do."""
    primary = Engine(settings.engine_name, LOCAL_LABEL if settings.uses_local_engine else SERVICE_LABEL,
                     cache_namespace(settings), _primary_backend(settings, session, observer, capabilities))
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
    settings: Settings, session: aiohttp.ClientSession, observer: SpeechObserver | None,
    capabilities: EndpointCapabilities | None = None,
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
            capabilities=capabilities,
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


def make_probe(
    settings: Settings, session: aiohttp.ClientSession, capabilities: EndpointCapabilities
) -> CapabilityProbe | None:
    """The measuring of the endpoint's speeds and voices after start (``SPEECH_PROBE``), on a client of its own
    (one attempt per request, outside the breaker and the metrics: it is not users' speech), or None."""
    if not settings.probes_endpoint or (settings.declared_speeds is not None and len(settings.speech_voices) < 2):
        return None  # nothing to measure
    from bot.speech.client import OpenAISpeechClient, Timeouts
    from bot.speech.probe import CapabilityProbe
    from bot.speech.retry import RetryPolicy

    client = OpenAISpeechClient(
        session, base_url=settings.speech_api_base_url, api_key=settings.speech_api_key, model=settings.speech_model,
        voices=settings.speech_voices, policy=RetryPolicy(max_attempts=1),
        timeouts=Timeouts(first_byte=settings.speech_timeout, between_chunks=settings.speech_timeout),
        capabilities=capabilities,
    )
    return CapabilityProbe(client, capabilities, settings.speed_range, settings.speech_api_base_url)


def make_voice_refresher(
    configured: Settings, settings: Settings, session: aiohttp.ClientSession, capabilities: EndpointCapabilities
) -> VoiceRefresher | None:
    """What keeps the offered voices following the server's list while the bot runs (``configured``: the settings
    as loaded, with ``SPEECH_VOICES`` or the model's list; ``settings``: with the offer of the start), or None
    where voices come from elsewhere (the Realtime API's catalog, the offline engine)."""
    if settings.engine_name != "openai":
        return None
    from bot.speech.voices import VoiceRefresher, ask_voice_list

    key = settings.speech_api_key.get_secret_value() if settings.speech_api_key else None

    async def ask() -> tuple[tuple[str, ...] | None, str | None]:
        return await ask_voice_list(session, settings.speech_api_base_url, key)

    return VoiceRefresher(capabilities, ask, configured=configured.speech_voices,
                          configured_set=configured.speech_voices_set, default_voice=settings.default_voice)


def endpoint_capabilities(settings: Settings, source: VoiceSource | None = None) -> EndpointCapabilities:
    """What is known of the endpoint before it has answered anything: its voices, and ``SPEECH_SPEED_RANGE``."""
    if source is None:
        source = VoiceSource.SETTING if settings.speech_voices_set else VoiceSource.MODEL
    capabilities = EndpointCapabilities(voices=settings.speech_voices, voice_source=source)
    if settings.declared_speeds is not None:
        capabilities.speeds, capabilities.speeds_declared = settings.declared_speeds, True
    elif not settings.probes_endpoint and settings.engine_name == "openai":
        capabilities.probe_note = "SPEECH_PROBE=off" if settings.speech_probe.value == "off" else (
            "not measured on a paid endpoint; SPEECH_PROBE=on to measure")
    return capabilities
