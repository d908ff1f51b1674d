"""Slash-command sync that happens only when the commands changed.

Bulk-overwriting is idempotent on Discord's side, but every start would still cost a request per scope and
new commands count toward a daily limit. The hash of what was last synced is kept in the data directory, per
application and scope (a new bot token for another application finds nothing synced and syncs);
``speechbot run --sync`` forces a sync.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import discord
from discord import app_commands

log = logging.getLogger(__name__)


async def commands_fingerprint(tree: app_commands.CommandTree, guild: discord.abc.Snowflake | None) -> str:
    """The hash of what a sync would send, translations included (a catalogue change syncs too)."""
    translator = tree.translator
    commands = tree.get_commands(guild=guild)
    if translator is None:
        payload = [command.to_dict(tree) for command in commands]
    else:
        payload = [await command.get_translated_payload(tree, translator) for command in commands]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CommandSyncState:
    """The fingerprints of the last successful sync per application and scope ("<app id>/global" or
    "<app id>/<guild id>"), in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, scope: str) -> str | None:
        return self._load().get(scope)

    def set(self, scope: str, fingerprint: str) -> None:
        data = self._load()
        data[scope] = fingerprint
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self._path)


async def sync_commands(
    tree: app_commands.CommandTree,
    state: CommandSyncState,
    *,
    application_id: int,
    dev_guild_id: int | None,
    force: bool = False,
) -> bool:
    """Sync to the dev guild (instant) or globally, if the commands changed or ``force``; True if synced."""
    guild = discord.Object(dev_guild_id) if dev_guild_id else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    scope = f"{application_id}/{dev_guild_id or 'global'}"
    fingerprint = await commands_fingerprint(tree, guild)
    if not force and state.get(scope) == fingerprint:
        log.info("slash commands unchanged (scope=%s), not syncing", scope)
        return False
    synced = await tree.sync(guild=guild)
    state.set(scope, fingerprint)
    log.info("synced %d slash commands (scope=%s)", len(synced), scope)
    return True
