"""Choosing the speech backend from the settings (``auto``: the API when a key is set, else offline)."""

from __future__ import annotations

import aiohttp

from bot.config import Settings
from bot.speech.errors import SpeechUnavailableError
from bot.speech.models import SpeechBackend


def make_speech_backend(settings: Settings, session: aiohttp.ClientSession) -> SpeechBackend:
    """Build the configured backend; raises SpeechUnavailableError saying what to install when it cannot run."""
    if settings.uses_local_engine:
        from bot.speech.local import INSTALL_HINT, LocalSpeechEngine

        if not LocalSpeechEngine.is_installed():
            raise SpeechUnavailableError(
                "No speech backend: SPEECH_API_KEY is empty and the offline engine is not installed. "
                f"Install it with: {INSTALL_HINT}  (or set SPEECH_API_KEY)."
            )
        return LocalSpeechEngine(settings.speech_voices)

    from bot.speech.breaker import BreakerSpeechBackend, CircuitBreaker
    from bot.speech.client import OpenAISpeechClient, Timeouts

    client = OpenAISpeechClient(
        session,
        base_url=settings.speech_api_base_url,
        api_key=settings.speech_api_key,
        model=settings.speech_model,
        voices=settings.speech_voices,
        timeouts=Timeouts(first_byte=settings.speech_timeout, between_chunks=settings.speech_timeout),
    )
    breaker = CircuitBreaker(
        failure_threshold=settings.speech_breaker_failures, cooldown=settings.speech_breaker_cooldown
    )
    return BreakerSpeechBackend(client, breaker)


def cache_namespace(settings: Settings) -> str:
    """What, besides the request, decides the audio: the offline engine, or the endpoint and its model. Part of
    every audio cache key, so switching endpoint or model never serves the old one's audio."""
    if settings.uses_local_engine:
        return "local:piper:en_US-joe-medium"
    return f"openai:{settings.speech_api_base_url}:{settings.speech_model}"
