"""The bot object: wiring of settings, speech backend and extensions; nothing feature-specific."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.command_sync import CommandSyncState, sync_commands
from bot.command_translator import CatalogueTranslator
from bot.errors import UserFacingError
from bot.i18n import translate
from bot.interactions import Refused, language_for, send_ephemeral
from bot.option_check import InvalidOption, check_options
from bot.owner_only import is_owner_only
from bot.permissions import NotModerator
from bot.speech.errors import SpeechError
from bot.storage import StorageError

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

#: Extensions loaded in ``setup_hook``, by dotted name. ``bot`` never imports ``cogs``; it only names them.
EXTENSIONS: tuple[str, ...] = (
    "cogs.speak",
    "cogs.voice",
    "cogs.settings",
    "cogs.preferences",
    "cogs.moderation",
    "cogs.readaloud",
    "cogs.owner",
    "cogs.help",
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
    """One place that checks every option (``bot.option_check``) and turns command failures into short
    ephemeral replies."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        check_options(self, interaction)  # raises InvalidOption, answered by on_error
        command = interaction.command
        if command is not None and is_owner_only(command):
            return True  # the owner's own check is the group's; blocklists never lock the owner out
        client = interaction.client
        assert isinstance(client, SpeechBot)
        refusal = await client.services.speaking.blocked(interaction.guild_id, interaction.user.id)
        if refusal is None:
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            return False  # no suggestions; nothing to say there
        raise Refused(UserFacingError(refusal))  # one ephemeral line in the caller's language (on_error)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        language = language_for(interaction)
        if isinstance(original, (UserFacingError, SpeechError)):
            message = original.localized(language)
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = translate(language, "Slow down: try again in {seconds} s.", seconds=round(error.retry_after))
        elif isinstance(error, app_commands.MissingPermissions):
            missing = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
            message = translate(language, "You need these permissions: {permissions}", permissions=missing)
        elif isinstance(error, app_commands.BotMissingPermissions):
            missing = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
            message = translate(language, "I need these permissions here: {permissions}.", permissions=missing)
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = translate(language, "This command only works in a server.")
        elif isinstance(original, NotModerator):
            message = original.text.render(language)
        elif isinstance(original, InvalidOption):
            message = translate(language, "That option isn't valid: {option}.", option=original.option)
        elif isinstance(error, Refused):
            message = error.reason.localized(language)
        elif isinstance(error, app_commands.CheckFailure):
            message = translate(language, "You cannot use this command here.")
        elif isinstance(error, (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)):
            # Discord's client still offers a command this process does not have (yet): after a deploy, commands
            # reach clients with a delay. Nothing is wrong with the bot.
            log.warning("command %r is not one this process has, or has changed: %s", getattr(error, "name", "?"),
                        type(error).__name__)
            message = translate(
                language, "I don't know that command (it may have just changed). Try again in a minute."
            )
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
            message = translate(language, "Discord did not take my reply just now. Please try again in a moment.")
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
            message = translate(language, "Something went wrong on my side. Please try again.")
        try:
            await send_ephemeral(interaction, message)
        except Exception as exc:  # noqa: BLE001 - best effort: the interaction may have expired, or we stop
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
        services: Services,
        *,
        connector: aiohttp.BaseConnector | None = None,
        force_sync: bool = False,
        message_content: bool = True,
    ) -> None:
        settings = services.settings
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(message_content=message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=SpeechTree,
            owner_ids=set(settings.owner_ids) or None,  # None: the application's owner or team (Discord says)
            connector=connector,
            shard_count=settings.shard_count,
            # discord.py types this as a list, but takes None (its default) as "every shard"
            shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,  # type: ignore[arg-type]
            activity=PRESENCE,
            status=discord.Status.online,
        )
        self.services = services
        self.settings = settings
        if services.health is not None:
            services.health.attach(self._not_ready_because, self.refresh_gauges)
        self._sync_state = CommandSyncState(settings.data_dir / "command-sync.json")
        self._force_sync = force_sync
        self._rejoined_shards: set[int] = set()

    @property
    def syncs_commands(self) -> bool:
        """Commands belong to the application, not to a shard: of several processes, the one running shard 0
        syncs them (a process running every shard always does)."""
        return self.shard_ids is None or 0 in self.shard_ids

    async def setup_hook(self) -> None:
        await self.services.start()
        await self.tree.set_translator(CatalogueTranslator())
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.syncs_commands:
            assert self.application_id is not None  # login() fetched the application before setup_hook
            await sync_commands(
                self.tree,
                self._sync_state,
                application_id=self.application_id,
                dev_guild_id=self.settings.dev_guild_id,
                force=self._force_sync,
            )
        else:
            log.info("slash commands are synced by the process that runs shard 0, not this one")

    async def close(self) -> None:
        """Stop reading and leave voice channels first (players stop cleanly, the leaves need the gateway), then
        close the gateway. The other services belong to whoever built them (``Services.close``)."""
        await self.services.stop_voice()
        await super().close()

    async def _not_ready_because(self) -> str | None:
        """For ``/readyz``: None when every shard of this process is connected and the database answers."""
        if not self.is_ready() or self.is_closed():
            return "the Discord gateway is not ready"
        down = sorted(shard_id for shard_id, shard in self.shards.items() if shard.is_closed())
        if down:
            return "gateway shard " + ", ".join(map(str, down)) + " is disconnected"
        try:
            await self.services.store.ping()
        except StorageError:
            return "the database does not answer"
        return None

    def refresh_gauges(self) -> None:
        """The gauges that describe the bot's state, read now (a scrape, ``/owner stats``)."""
        metrics, sessions = self.services.metrics, self.services.voice.all()
        metrics.guilds.set(len(self.guilds))
        metrics.voice_sessions.set(len(sessions))
        metrics.queue_depth.set(sum(session.player.queued for session in sessions))
        metrics.set_cache_sizes(self.services.speech.stats)
        for shard_id, latency in self.latencies:
            if math.isfinite(latency):
                metrics.gateway_latency.labels(str(shard_id)).set(latency)

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
        await self.services.voice.adopt(self)
        if shard_id not in self._rejoined_shards:  # the sessions of the previous run, once
            self._rejoined_shards.add(shard_id)
            await self._rejoin_voice(shard_id)

    async def _rejoin_voice(self, shard_id: int) -> None:
        """Rejoin the voice channels this shard's servers had when the bot last stopped."""
        assert self.shard_count is not None  # known once a shard is ready
        try:
            remembered = await self.services.store.voice_sessions()
        except StorageError as exc:
            log.warning("could not read the voice sessions to rejoin (shard=%d): %s", shard_id, exc)
            return
        mine = [record for record in remembered if shard_of(record.guild_id, self.shard_count) == shard_id]
        limit = asyncio.Semaphore(REJOIN_CONCURRENCY)

        async def rejoin(guild_id: int, channel_id: int) -> bool:
            async with limit:
                return await self.services.voice.rejoin(self.get_guild(guild_id), guild_id, channel_id)

        results = await asyncio.gather(*(rejoin(r.guild_id, r.channel_id) for r in mine))
        log.info("rejoined %d of %d remembered voice sessions (shard=%d)", sum(results), len(mine), shard_id)
