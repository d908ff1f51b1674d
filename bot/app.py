"""The bot object: wiring of settings, speech backend and extensions; nothing feature-specific."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Sequence

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.command_sync import CommandSyncState, sync_commands
from bot.config import Settings
from bot.errors import UserFacingError
from bot.policy import Policy
from bot.replies import send_ephemeral
from bot.speech.cache import AudioCache
from bot.speech.errors import SpeechError
from bot.speech.failover import Engine, FailoverSpeech
from bot.metrics import HealthServer, MeteredSpeechBackend, Metrics
from bot.storage import StorageError, Store
from bot.voice.sessions import VoiceLimits, VoiceSessions

log = logging.getLogger(__name__)

#: Extensions loaded in ``setup_hook``, by dotted name. ``bot`` never imports ``cogs``; it only names them.
EXTENSIONS: tuple[str, ...] = (
    "cogs.speak",
    "cogs.voice",
    "cogs.settings",
    "cogs.preferences",
    "cogs.moderation",
    "cogs.readaloud",
)


#: What members see on the bot's profile; sent in every shard's IDENTIFY, so every shard shows it.
PRESENCE = discord.Activity(type=discord.ActivityType.listening, name="/speak")
#: Voice connections opened at once when rejoining after a restart.
REJOIN_CONCURRENCY = 4


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that carries a guild's events (Discord's formula)."""
    return (guild_id >> 22) % shard_count


def intents(*, message_content: bool = True) -> discord.Intents:
    """The defaults plus MESSAGE_CONTENT (privileged: read-aloud needs the text of messages) when allowed."""
    chosen = discord.Intents.default()
    chosen.message_content = message_content
    return chosen


class SpeechTree(app_commands.CommandTree["SpeechBot"]):
    """One place that turns command failures into short ephemeral replies."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserFacingError):
            message = original.message
        elif isinstance(original, SpeechError):
            message = original.user_message
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = f"Slow down: try again in {error.retry_after:.0f} s."
        elif isinstance(error, app_commands.MissingPermissions):
            message = "You need these permissions: " + ", ".join(p.replace("_", " ") for p in error.missing_permissions)
        elif isinstance(error, app_commands.BotMissingPermissions):
            missing = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
            message = f"I need these permissions here: {missing}."
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = "This command only works in a server."
        elif isinstance(error, app_commands.CheckFailure):
            message = str(error) or "You cannot use this command here."
        elif isinstance(original, discord.HTTPException) and (original.status == 429 or original.status >= 500):
            # Discord's side, and discord.py already retried what can be retried: one line, no traceback.
            banned = _cloudflare_ban(original)
            log.log(
                logging.ERROR if banned else logging.WARNING,
                "command %s: Discord answered %d (code %s); %s (guild=%s channel=%s user=%s)",
                interaction.command.qualified_name if interaction.command else "?",
                original.status,
                original.code,
                "a Cloudflare ban on this IP (after too many invalid requests), lifted by Cloudflare within the hour"
                if banned
                else "discord.py gave up retrying",
                interaction.guild_id,
                interaction.channel_id,
                interaction.user.id,
            )
            message = "Discord did not take my reply just now. Please try again in a moment."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command %s failed (guild=%s channel=%s user=%s)",
                command,
                interaction.guild_id,
                interaction.channel_id,
                interaction.user.id,
                exc_info=original,
            )
            message = "Something went wrong on my side. Please try again."
        try:
            await send_ephemeral(interaction, message)
        except Exception as exc:  # best effort: the interaction may have expired, or the bot be shutting down
            log.warning("could not send an error reply (interaction=%s): %s", interaction.id, type(exc).__name__)


def _cloudflare_ban(error: discord.HTTPException) -> bool:
    """A 429 without Discord's ``Via`` header is not Discord's rate limit (discord.py waits those out) but
    Cloudflare's ban of the IP, usually after many invalid requests; discord.py rightly does not retry it."""
    return error.status == 429 and not error.response.headers.get("Via")


class SpeechBot(commands.AutoShardedBot):
    """Holds the injected services; features live in ``cogs/`` and ``bot/`` modules.

    Always sharded the discord.py way: with ``SHARD_COUNT`` unset it asks Discord how many shards to run and
    runs them all (one for a bot in fewer than 1000 servers); with ``SHARD_COUNT``/``SHARD_IDS`` it runs its
    part of a fleet of processes sharing one database.
    """

    def __init__(
        self,
        settings: Settings,
        engines: Sequence[Engine],
        store: Store,
        *,
        connector: aiohttp.BaseConnector | None = None,
        force_sync: bool = False,
        message_content: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(message_content=message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=SpeechTree,
            connector=connector,
            shard_count=settings.shard_count,
            shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,
            activity=PRESENCE,
            status=discord.Status.online,
        )
        self.settings = settings
        self.metrics = metrics or Metrics()
        # The cache is in front of each engine: a hit is no speech request (metrics), and is served while the
        # breaker is open; the failover tries the primary's cache and engine, then each fallback's.
        metered = [
            dataclasses.replace(engine, backend=MeteredSpeechBackend(engine.backend, self.metrics))
            for engine in engines
        ]
        cache = AudioCache(
            metered[0].backend,
            namespace=metered[0].namespace,
            memory_bytes=settings.cache_memory_bytes,
            disk_dir=settings.audio_cache_dir,
            disk_bytes=settings.cache_disk_bytes,
            on_lookup=self.metrics.count_cache_lookup,
        )
        self.speech = FailoverSpeech(cache, metered, observer=self.metrics)
        self.store = store
        self.policy = Policy(settings, store)
        self.voice_sessions = VoiceSessions(
            self.speech,
            VoiceLimits(
                idle_timeout=settings.voice_idle_timeout,
                alone_timeout=settings.voice_alone_timeout,
                max_queue=settings.voice_queue_size,
                # the speech client gives up after its own timeout; the player's net is a little wider
                stall_timeout=settings.speech_timeout + 5,
            ),
            on_first_packet=self.metrics.time_to_first_packet.observe,
            guild_timeouts=self._guild_timeouts,
            journal=store,
        )
        self._health = (
            HealthServer(self.metrics, self._not_ready_because, self._refresh_gauges)
            if settings.metrics_port is not None
            else None
        )
        self._sync_state = CommandSyncState(settings.data_dir / "command-sync.json")
        self._force_sync = force_sync
        self._rejoined_shards: set[int] = set()

    @property
    def syncs_commands(self) -> bool:
        """Commands belong to the application, not to a shard: of several processes, the one running shard 0
        syncs them (a process running every shard always does)."""
        return self.shard_ids is None or 0 in self.shard_ids

    async def setup_hook(self) -> None:
        await self.speech.start()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.syncs_commands:
            await sync_commands(
                self.tree, self._sync_state, dev_guild_id=self.settings.dev_guild_id, force=self._force_sync
            )
        else:
            log.info("slash commands are synced by the process that runs shard 0, not this one")
        if self._health is not None:
            assert self.settings.metrics_port is not None
            await self._health.start(self.settings.metrics_host, self.settings.metrics_port)

    async def close(self) -> None:
        """Leave voice channels first (players stop cleanly), then close the gateway, then finish the cache's
        disk writes (and log its hit rate)."""
        await self.voice_sessions.close()
        await super().close()
        await self.speech.shutdown()  # the speech backend itself belongs to whoever made it
        if self._health is not None:
            await self._health.close()

    async def _guild_timeouts(self, guild_id: int) -> tuple[float | None, float | None]:
        settings = await self.store.get_guild_settings(guild_id)
        return settings.idle_timeout, settings.alone_timeout

    async def _not_ready_because(self) -> str | None:
        """For ``/readyz``: None when every shard of this process is connected and the database answers."""
        if not self.is_ready() or self.is_closed():
            return "the Discord gateway is not ready"
        down = sorted(shard_id for shard_id, shard in self.shards.items() if shard.is_closed())
        if down:
            return "gateway shard " + ", ".join(map(str, down)) + " is disconnected"
        try:
            await self.store.ping()
        except StorageError:
            return "the database does not answer"
        return None

    def _refresh_gauges(self) -> None:
        sessions = self.voice_sessions.all()
        self.metrics.voice_sessions.set(len(sessions))
        self.metrics.queue_depth.set(sum(session.player.queued for session in sessions))
        self.metrics.set_cache_sizes(self.speech.stats)
        for shard_id, latency in self.latencies:
            if math.isfinite(latency):
                self.metrics.gateway_latency.labels(str(shard_id)).set(latency)

    async def on_ready(self) -> None:
        log.info(
            "ready as user=%s in %d guilds (shards %s of %s)",
            self.user.id if self.user else "?",
            len(self.guilds),
            ",".join(map(str, sorted(self.shards))),
            self.shard_count,
        )

    async def on_shard_ready(self, shard_id: int) -> None:
        """Every READY of a shard: at start-up and after each new gateway session (a RESUME fires
        ``on_shard_resumed`` instead)."""
        guilds = sum(1 for guild in self.guilds if guild.shard_id == shard_id)
        log.info("shard %d of %s ready in %d guilds", shard_id, self.shard_count, guilds)
        await self.voice_sessions.adopt(self)
        if shard_id not in self._rejoined_shards:  # the sessions of the previous run, once
            self._rejoined_shards.add(shard_id)
            await self._rejoin_voice(shard_id)

    async def _rejoin_voice(self, shard_id: int) -> None:
        """Rejoin the voice channels this shard's servers had when the bot last stopped."""
        assert self.shard_count is not None  # known once a shard is ready
        try:
            remembered = await self.store.voice_sessions()
        except StorageError as exc:
            log.warning("could not read the voice sessions to rejoin (shard=%d): %s", shard_id, exc)
            return
        mine = [record for record in remembered if shard_of(record.guild_id, self.shard_count) == shard_id]
        limit = asyncio.Semaphore(REJOIN_CONCURRENCY)

        async def rejoin(guild_id: int, channel_id: int) -> bool:
            async with limit:
                return await self.voice_sessions.rejoin(self.get_guild(guild_id), guild_id, channel_id)

        results = await asyncio.gather(*(rejoin(r.guild_id, r.channel_id) for r in mine))
        log.info("rejoined %d of %d remembered voice sessions (shard=%d)", sum(results), len(mine), shard_id)
