"""The composition root: every service of the bot built once, here, and handed to whoever uses it.

``cli`` opens the services, builds :class:`~bot.app.SpeechBot` around them and closes them after the bot has
stopped (discord.py's ``examples/advanced_startup.py`` shape); cogs get the services they use in ``setup``.
Tests build the same graph with doubles in place of the store or the engines.

Order of construction (and, reversed, of shutdown): store → metrics → speech engines → audio cache and failover
→ policy and usage ledger → speech service → voice sessions → read-aloud → health server.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.metrics import HealthServer, MeteredSpeechBackend, Metrics
from bot.owner_controls import OwnerControls
from bot.policy import Policy
from bot.readaloud.reader import ReadAloud
from bot.speech.cache import AudioCache
from bot.speech.capabilities import EndpointCapabilities
from bot.speech.failover import Engine, FailoverSpeech
from bot.speech_service import SpeechService
from bot.storage import Store
from bot.usage import UsageLedger
from bot.voice.sessions import VoiceLimits, VoiceSessions

if TYPE_CHECKING:
    from bot.speech.probe import CapabilityProbe
    from bot.speech.voices import VoiceRefresher

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Services:
    """What the bot is made of besides Discord: one of each, shared."""

    settings: Settings
    store: Store
    metrics: Metrics
    engines: Sequence[Engine]
    speech: FailoverSpeech
    policy: Policy
    ledger: UsageLedger
    speaking: SpeechService
    voice: VoiceSessions
    read_aloud: ReadAloud
    health: HealthServer | None
    controls: OwnerControls
    #: What the speech endpoint was found to do (``/settings show``); the probe measures the rest after start.
    capabilities: EndpointCapabilities = field(default_factory=EndpointCapabilities)
    probe: CapabilityProbe | None = None
    #: Asks the server's voice list again while the bot runs (``capabilities.voices``, read by every reader).
    voice_refresher: VoiceRefresher | None = None

    async def start(self) -> None:
        """What must run before the bot connects: the owner's controls, warm speech sessions, the health
        endpoints; and, in the background, the measuring of the endpoint's speeds and voices and the refreshing
        of its voice list."""
        await self.controls.refresh(force=True)
        await self.speech.start()
        if self.probe is not None:
            self.probe.start()
        if self.voice_refresher is not None:
            self.voice_refresher.start()
        if self.health is not None:
            assert self.settings.metrics_port is not None
            await self.health.start(self.settings.metrics_host, self.settings.metrics_port)

    async def forget_guild(self, guild_id: int) -> None:
        """The bot was removed from a server (or it was deleted): end what ran there and drop what was kept for
        it in memory; what is stored stays (a server that adds the bot back finds its settings)."""
        await self.voice.leave(guild_id, reason="removed from the server")
        self.read_aloud.forget(guild_id)
        self.ledger.forget_guild(guild_id)
        self.store.forget_cached(guild_id=guild_id)

    async def stop_voice(self) -> None:
        """Stop reading and leave every voice channel (remembered for the next start); while the gateway is up."""
        await self.read_aloud.close()
        await self.voice.close()

    async def close(self) -> None:
        """Everything, in reverse order of construction (idempotent; the gateway is closed by then)."""
        await self.stop_voice()
        if self.probe is not None:
            await self.probe.close()
        if self.voice_refresher is not None:
            await self.voice_refresher.close()
        await self.ledger.close()  # batched usage written
        await self.speech.shutdown()  # the cache's disk writes finished, its hit rate logged
        for engine in self.engines:
            await engine.backend.close()
        if self.health is not None:
            await self.health.close()
        await self.store.close()


def build_speech(
    settings: Settings, engines: Sequence[Engine], metrics: Metrics, controls: OwnerControls | None = None
) -> FailoverSpeech:
    """The audio cache in front of each engine (a hit is no speech request, and is served while the breaker is
    open), and the failover over them."""
    metered = [dataclasses.replace(engine, backend=MeteredSpeechBackend(engine.backend, metrics)) for engine in engines]
    cache = AudioCache(
        metered[0].backend,
        namespace=metered[0].namespace,
        memory_bytes=settings.cache_memory_bytes,
        disk_dir=settings.audio_cache_dir,
        disk_bytes=settings.cache_disk_bytes,
        on_lookup=metrics.count_cache_lookup,
    )
    disabled = controls.disabled_engines if controls is not None else frozenset
    return FailoverSpeech(cache, metered, observer=metrics, disabled=disabled)


def build_services(
    settings: Settings, store: Store, engines: Sequence[Engine], *, metrics: Metrics | None = None,
    capabilities: EndpointCapabilities | None = None, probe: CapabilityProbe | None = None,
    voice_refresher: VoiceRefresher | None = None,
) -> Services:
    """Every service, wired (nothing started: see :meth:`Services.start`)."""
    metrics = metrics or Metrics()
    controls = OwnerControls(store)
    capabilities = capabilities or EndpointCapabilities(voices=settings.speech_voices)
    speech = build_speech(settings, engines, metrics, controls)
    policy = Policy(settings, store, capabilities=capabilities)
    ledger = UsageLedger(store, observer=metrics)
    speaking = SpeechService(speech, policy, ledger, settings, controls, capabilities)

    async def guild_language(guild_id: int) -> str:
        return (await store.get_guild_settings(guild_id)).language.value

    async def guild_timeouts(guild_id: int) -> tuple[float | None, float | None]:
        guild = await store.get_guild_settings(guild_id)
        return guild.idle_timeout, guild.alone_timeout

    voice = VoiceSessions(
        speech,
        VoiceLimits(
            idle_timeout=settings.voice_idle_timeout,
            alone_timeout=settings.voice_alone_timeout,
            max_queue=settings.voice_queue_size,
            # the speech client gives up after its own timeout; the player's net is a little wider
            stall_timeout=settings.speech_timeout + 5,
        ),
        on_first_packet=metrics.time_to_first_packet.observe,
        guild_timeouts=guild_timeouts,
        guild_language=guild_language,
        journal=store,
    )
    read_aloud = ReadAloud(voice, store, speaking, hold=settings.read_hold, queue_limit=settings.voice_queue_size)
    health = HealthServer(metrics) if settings.metrics_port is not None else None
    return Services(settings, store, metrics, engines, speech, policy, ledger, speaking, voice, read_aloud, health,
                    controls, capabilities, probe, voice_refresher)
