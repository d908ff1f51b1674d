"""Prometheus metrics and health endpoints on an optional port (``METRICS_PORT``).

One registry per bot (no process-global state), so tests and several bots in one process stay apart.
Counters are bumped where things happen; gauges that describe the bot's state (voice sessions, queue depth,
gateway latency) are read when Prometheus scrapes, so they can never drift from the truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.speech.cache import CacheStats, Origin
from bot.speech.errors import (
    SpeechAuthError,
    SpeechConnectionError,
    SpeechError,
    SpeechRateLimitError,
    SpeechRejectedError,
    SpeechRewordedError,
    SpeechServiceError,
    SpeechTimeoutError,
    SpeechUnavailableError,
    SpeechValidationError,
)
from bot.speech.models import SpeechBackend, SpeechRequest, SpeechStream

log = logging.getLogger(__name__)

#: Where Prometheus scrapes (deploy/prometheus/prometheus.yml names it too).
METRICS_PATH = "/metrics"

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

#: The ``kind`` label of ``speechbot_speech_errors_total``, by error type (most specific first).
_ERROR_KINDS: tuple[tuple[type[SpeechError], str], ...] = (
    (SpeechAuthError, "auth"),
    (SpeechRateLimitError, "rate_limit"),
    (SpeechRejectedError, "rejected"),
    (SpeechServiceError, "service"),
    (SpeechTimeoutError, "timeout"),
    (SpeechConnectionError, "connection"),
    (SpeechValidationError, "validation"),
    (SpeechUnavailableError, "unavailable"),
    (SpeechRewordedError, "reworded"),
)
ERROR_KINDS = (*(kind for _, kind in _ERROR_KINDS), "quota", "other")
BUDGET_PERIODS = ("daily", "monthly")


def error_kind(error: SpeechError) -> str:
    """What kind of failure, for the errors panel: few values, so the label stays cheap (no status codes)."""
    if isinstance(error, SpeechRateLimitError) and error.code == "insufficient_quota":
        return "quota"  # out of credit: the operator must act, unlike a rate limit
    return next((kind for cls, kind in _ERROR_KINDS if isinstance(error, cls)), "other")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.speech_requests = Counter(
            "speechbot_speech_requests",
            "Speech syntheses started, by backend, outcome (ok/error) and HTTP status ('' when none).",
            ["backend", "outcome", "status"],
            registry=self.registry,
        )
        self.speech_characters = Counter(
            "speechbot_speech_characters", "Characters sent for synthesis.", ["backend"], registry=self.registry
        )
        self.time_to_first_byte = Histogram(
            "speechbot_speech_time_to_first_byte_seconds",
            "From starting a synthesis to holding its first audio bytes (retries included).",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_packet = Histogram(
            "speechbot_voice_time_to_first_packet_seconds",
            "From queueing an item to its first 20 ms Opus packet being ready to send.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.guilds = Gauge("speechbot_guilds", "Servers this process's shards are in.", registry=self.registry)
        self.voice_sessions = Gauge("speechbot_voice_sessions", "Voice channels the bot is in.", registry=self.registry)
        self.queue_depth = Gauge(
            "speechbot_voice_queue_depth", "Items waiting to be played, all guilds.", registry=self.registry
        )
        self.gateway_latency = Gauge(
            "speechbot_gateway_latency_seconds",
            "Heartbeat round trip to Discord's gateway, per shard this process runs.",
            ["shard"],
            registry=self.registry,
        )

        self.cache_hits = Counter(
            "speechbot_cache_hits",
            "Audio served by the audio cache without a new speech request, by where it came from "
            "(memory, disk, shared = an identical request already on its way).",
            ["tier"],
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "speechbot_cache_misses", "Audio the cache did not hold: a speech request was sent.", registry=self.registry
        )
        self.cache_bytes = Gauge(
            "speechbot_cache_bytes", "Audio held by the audio cache, in bytes, by tier.", ["tier"],
            registry=self.registry,
        )
        self.cache_entries = Gauge(
            "speechbot_cache_entries", "Entries held by the audio cache, by tier.", ["tier"], registry=self.registry
        )
        for tier in (Origin.MEMORY, Origin.DISK, Origin.SHARED):
            self.cache_hits.labels(tier.value)  # exposed at 0 from the start, so rates are defined at once

        self.speech_tokens = Counter(
            "speechbot_speech_tokens",
            "Tokens the Realtime API billed (response.done usage): input, output, and the output's audio part.",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.transcript_checks = Counter(
            "speechbot_speech_transcript_checks",
            "Voice-model responses whose transcript was compared with the text: ok, or reworded (audio not used).",
            ["backend", "result"],
            registry=self.registry,
        )
        self.transcript_deviation = Histogram(
            "speechbot_speech_transcript_deviation",
            "How far a voice model's transcript was from the text (edited words per word).",
            ["backend"],
            buckets=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
            registry=self.registry,
        )
        self.speech_errors = Counter(
            "speechbot_speech_errors",
            "Speech syntheses that failed, by backend and kind (auth, quota, rate_limit, rejected, service, timeout, "
            "connection, validation, unavailable, reworded, other).",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.budget_characters = Counter(
            "speechbot_budget_characters",
            "Characters counted against servers' speech budgets (spoken by the speech service; cache hits and "
            "fallback engines are not counted), all servers together.",
            registry=self.registry,
        )
        self.budget_refusals = Counter(
            "speechbot_budget_refusals",
            "Requests refused because a server's daily or monthly character budget had no room left.",
            ["period"],
            registry=self.registry,
        )
        for period in BUDGET_PERIODS:
            self.budget_refusals.labels(period)  # exposed at 0 from the start
        self.failovers = Counter(
            "speechbot_speech_failovers",
            "Requests spoken by a fallback engine because the primary could not (outage, model_gone, no_credit).",
            ["engine", "reason"],
            registry=self.registry,
        )

    # -- bot.speech.observer.SpeechObserver --

    def tokens_used(self, backend: str, input_tokens: int, output_tokens: int, output_audio_tokens: int) -> None:
        self.speech_tokens.labels(backend, "input").inc(input_tokens)
        self.speech_tokens.labels(backend, "output").inc(output_tokens)
        self.speech_tokens.labels(backend, "output_audio").inc(output_audio_tokens)

    def transcript_checked(self, backend: str, deviation: float, rejected: bool) -> None:
        self.transcript_checks.labels(backend, "reworded" if rejected else "ok").inc()
        self.transcript_deviation.labels(backend).observe(deviation)

    def failed_over(self, engine: str, reason: str) -> None:
        self.failovers.labels(engine, reason).inc()

    # -- bot.usage.BudgetObserver --

    def budget_counted(self, characters: int) -> None:
        self.budget_characters.inc(characters)

    def budget_refused(self, period: str) -> None:
        self.budget_refusals.labels(period).inc()

    def count_cache_lookup(self, origin: Origin) -> None:
        if origin is Origin.SENT:
            self.cache_misses.inc()
        else:
            self.cache_hits.labels(origin.value).inc()

    def set_cache_sizes(self, stats: CacheStats) -> None:
        self.cache_bytes.labels("memory").set(stats.memory_bytes)
        self.cache_bytes.labels("disk").set(stats.disk_bytes)
        self.cache_entries.labels("memory").set(stats.memory_entries)
        self.cache_entries.labels("disk").set(stats.disk_entries)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MeteredSpeechBackend:
    """Counts every synthesis the bot starts and times it to the first audio bytes."""

    def __init__(self, inner: SpeechBackend, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name

    async def open(self, request: SpeechRequest) -> SpeechStream:
        started = time.perf_counter()
        try:
            stream = await self.inner.open(request)
        except SpeechError as error:
            status = "" if error.status is None else str(error.status)
            self.metrics.speech_requests.labels(self.name, "error", status).inc()
            self.metrics.speech_errors.labels(self.name, error_kind(error)).inc()
            raise
        self.metrics.speech_requests.labels(self.name, "ok", "200").inc()
        self.metrics.speech_characters.labels(self.name).inc(len(request.text))
        self.metrics.time_to_first_byte.labels(self.name).observe(time.perf_counter() - started)
        return stream

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()


async def _not_attached() -> str | None:
    return "the bot is starting"


class HealthServer:
    """``/metrics`` (Prometheus text), ``/healthz`` (the process answers) and ``/readyz`` (ready to serve)."""

    def __init__(
        self,
        metrics: Metrics,
        ready: Callable[[], Awaitable[str | None]] | None = None,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._ready = ready or _not_attached  # returns None when ready, else why not
        self._refresh = refresh or (lambda: None)  # updates the gauges read at scrape time
        self._runner: web.AppRunner | None = None

    def attach(self, ready: Callable[[], Awaitable[str | None]], refresh: Callable[[], None]) -> None:
        """What says whether the bot is ready, and refreshes the gauges (the bot, once it exists)."""
        self._ready, self._refresh = ready, refresh

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._handle_metrics)
        app.router.add_get("/healthz", self._handle_health)
        app.router.add_get("/readyz", self._handle_ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("metrics and health endpoints on %s:%d", host, port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_metrics(self, _: web.Request) -> web.Response:
        self._refresh()
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _handle_health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _handle_ready(self, _: web.Request) -> web.Response:
        problem = await self._ready()
        if problem is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {problem}\n")
