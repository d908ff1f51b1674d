"""``/owner``: the bot owner's tools for running a public instance — bot-wide blocklists, an engine kill switch
and a one-screen summary (``bot.owner_controls``, ``bot.stats``). Who the owner is, and why the commands are
global with a runtime check: ``bot.owner_only``. Every reply is ephemeral."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.interactions import NO_MENTIONS, language_for, reply_ephemeral, tr
from bot.owner_only import OWNER_ONLY, ensure_owner
from bot.stats import live_stats, render, stored_stats

if TYPE_CHECKING:
    from bot.app import SpeechBot
    from bot.services import Services

log = logging.getLogger(__name__)

#: Lines of ``/owner blocked`` before "… and N more".
LIST_LIMIT = 30


def _server_id(raw: str) -> int:
    raw = raw.strip()
    if not raw.isdigit() or not 0 < int(raw) < 2**64:
        raise UserFacingError("That isn't a server ID (a number; right-click the server → Copy Server ID).")
    return int(raw)


class OwnerCog(commands.Cog):
    owner = app_commands.Group(
        name="owner", description="The bot owner's tools for running this bot (owner only).",
        extras={OWNER_ONLY: True},
    )
    block = app_commands.Group(name="block", description="Block a user or a server bot-wide.", parent=owner)
    unblock = app_commands.Group(name="unblock", description="Lift a bot-wide block.", parent=owner)
    engine = app_commands.Group(name="engine", description="Switch a speech engine off or on bot-wide.", parent=owner)

    def __init__(self, bot: SpeechBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.controls = services.controls

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await ensure_owner(interaction)

    # -- stats --

    @owner.command(name="stats", description="Servers, voice, requests per engine, cache, errors, budgets.")
    async def stats(self, interaction: discord.Interaction[SpeechBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        self.bot.refresh_gauges()
        live = live_stats(self.services.metrics.render().decode())
        stored = await stored_stats(self.services.store, datetime.now(UTC).date())
        shards = self.bot.shard_count
        source = tr(interaction, "this process since it started; shards {shards} of {count}",
                    shards=",".join(map(str, sorted(self.bot.shards))), count=str(shards)) if shards and shards > 1 \
            else tr(interaction, "this process since it started")
        text = "\n".join(render(live, stored, live_source=source, language=language_for(interaction)))
        await interaction.followup.send(f"```\n{text[:1900]}\n```", ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- blocklists --

    @block.command(name="user", description="Never read this user, and refuse them every command.")
    @app_commands.describe(user="Who to block (a member, or paste a user ID).")
    async def block_user(self, interaction: discord.Interaction[SpeechBot], user: discord.User) -> None:
        if await self.bot.is_owner(user):
            raise UserFacingError("The bot's owner cannot be blocked.")
        changed = await self.controls.set_user_blocked(user.id, True)
        log.info("owner blocked user=%s (changed=%s)", user.id, changed)
        await reply_ephemeral(interaction, tr(interaction, "Blocked {user} bot-wide: their messages are never read "
                                              "and every command answers them with one line.", user=user.mention)
                              if changed else tr(interaction, "{user} was already blocked.", user=user.mention))

    @unblock.command(name="user", description="Let a blocked user use the bot again.")
    @app_commands.describe(user="Who to unblock (a member, or paste a user ID).")
    async def unblock_user(self, interaction: discord.Interaction[SpeechBot], user: discord.User) -> None:
        changed = await self.controls.set_user_blocked(user.id, False)
        log.info("owner unblocked user=%s (changed=%s)", user.id, changed)
        await reply_ephemeral(interaction, tr(interaction, "Unblocked {user}.", user=user.mention) if changed
                              else tr(interaction, "{user} was not blocked.", user=user.mention))

    @block.command(name="server", description="Refuse a server every command and never read it aloud.")
    @app_commands.describe(server="The server's ID (right-click the server → Copy Server ID).")
    async def block_server(self, interaction: discord.Interaction[SpeechBot], server: str) -> None:
        guild_id = _server_id(server)
        changed = await self.controls.set_guild_blocked(guild_id, True)
        log.info("owner blocked guild=%s (changed=%s)", guild_id, changed)
        # The bot stays a member (unblocking needs no new invite), but stops speaking there at once.
        left = await self.services.voice.leave(guild_id, reason="the server was blocked by the bot's owner")
        self.services.read_aloud.forget(guild_id)
        known = self.bot.get_guild(guild_id)
        where = (f"**{discord.utils.escape_markdown(known.name)}** ({guild_id})" if known
                 else tr(interaction, "server {id}", id=str(guild_id)))
        if not changed:
            await reply_ephemeral(interaction, tr(interaction, "{server} was already blocked.", server=where))
            return
        said = tr(interaction, "Blocked {server}: its commands get one line, nothing there is read aloud, and I left "
                  "its voice channel.", server=where) if left else tr(
            interaction, "Blocked {server}: its commands get one line, nothing there is read aloud.", server=where)
        if not known:
            # TRANSLATORS: two sentences one after the other (no space between them in Japanese)
            said = tr(interaction, "{sentence} {next}", sentence=said,
                      next=tr(interaction, "(I'm not in that server now; the block applies if I'm added.)"))
        await reply_ephemeral(interaction, said)

    @unblock.command(name="server", description="Let a blocked server use the bot again.")
    @app_commands.describe(server="The server's ID.")
    async def unblock_server(self, interaction: discord.Interaction[SpeechBot], server: str) -> None:
        guild_id = _server_id(server)
        changed = await self.controls.set_guild_blocked(guild_id, False)
        log.info("owner unblocked guild=%s (changed=%s)", guild_id, changed)
        await reply_ephemeral(interaction, tr(interaction, "Unblocked server {id}.", id=str(guild_id)) if changed
                              else tr(interaction, "Server {id} was not blocked.", id=str(guild_id)))

    @owner.command(name="blocked", description="Who and which servers are blocked bot-wide.")
    async def blocked(self, interaction: discord.Interaction[SpeechBot]) -> None:
        state = await self.controls.refresh(force=True)
        users = [f"<@{user_id}> ({user_id})" for user_id in sorted(state.blocked_users)]
        servers = [tr(interaction, "server {id}", id=str(guild_id)) for guild_id in sorted(state.blocked_guilds)]
        lines = [tr(interaction, "**Blocked users** ({count}):", count=str(len(users))), *_capped(interaction, users),
                 tr(interaction, "**Blocked servers** ({count}):", count=str(len(servers))),
                 *_capped(interaction, servers)]
        await reply_ephemeral(interaction, "\n".join(lines))

    # -- the kill switch --

    @engine.command(name="disable", description="Switch a speech engine off bot-wide (the next one speaks).")
    @app_commands.describe(name="The engine (openai, realtime, local).")
    async def engine_disable(self, interaction: discord.Interaction[SpeechBot], name: str) -> None:
        engine = self._engine(name)
        changed = await self.controls.set_engine_disabled(engine, True)
        log.warning("owner switched the %s engine off (changed=%s)", engine, changed)
        left = [e.name for e in self.services.engines if e.name not in self.controls.disabled_engines()]
        after = tr(interaction, "{engines} speaks instead.", engines=_then(interaction, left)) if left else tr(
            interaction, "No engine is left: every speech request is refused until you enable one.")
        said = (tr(interaction, "Switched {engine} off.", engine=engine) if changed
                else tr(interaction, "{engine} was already off.", engine=engine))
        await reply_ephemeral(interaction, tr(interaction, "{sentence} {next}", sentence=said, next=after))

    @engine.command(name="enable", description="Switch a speech engine back on.")
    @app_commands.describe(name="The engine (openai, realtime, local).")
    async def engine_enable(self, interaction: discord.Interaction[SpeechBot], name: str) -> None:
        engine = self._engine(name)
        changed = await self.controls.set_engine_disabled(engine, False)
        log.warning("owner switched the %s engine on (changed=%s)", engine, changed)
        await reply_ephemeral(interaction, tr(interaction, "Switched {engine} on.", engine=engine) if changed
                              else tr(interaction, "{engine} was not off.", engine=engine))

    @engine_disable.autocomplete("name")
    @engine_enable.autocomplete("name")
    async def _engine_names(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        off = self.controls.disabled_engines()
        return [app_commands.Choice(name=tr(interaction, "{engine} (off)", engine=e.name) if e.name in off
                                    else tr(interaction, "{engine} (on)", engine=e.name), value=e.name)
                for e in self.services.engines if current.lower() in e.name][:25]

    def _engine(self, name: str) -> str:
        names = [engine.name for engine in self.services.engines]
        if name not in names:
            raise UserFacingError("This bot has no engine called {name}; its engines: {engines}.",
                                  name=repr(name[:40]), engines=", ".join(names))
        return name


def _capped(interaction: discord.Interaction[SpeechBot], lines: list[str]) -> list[str]:
    if not lines:
        return [tr(interaction, "none")]
    more = len(lines) - LIST_LIMIT
    return lines[:LIST_LIMIT] + ([tr(interaction, "… and {count} more", count=str(more))] if more > 0 else [])


def _then(interaction: discord.Interaction[SpeechBot], engines: list[str]) -> str:
    """"openai, then local": the engines in the order they are tried."""
    said = engines[0]
    for engine in engines[1:]:
        said = tr(interaction, "{engines}, then {engine}", engines=said, engine=engine)
    return said


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(OwnerCog(bot, bot.services))
