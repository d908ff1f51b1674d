"""The loopback Discord refuses commands the way Discord does: names that break its naming rules, locales it
does not have, and names used twice among siblings (in any locale)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.loopback.discord import DiscordEmulator

SPEAK = {"name": "speak", "description": "Say it.", "name_localizations": {"ja": "読み上げ", "de": "sprechen"},
         "description_localizations": {"ja": "話します。"},
         "options": [{"type": 3, "name": "text", "description": "What.", "name_localizations": {"ja": "テキスト"},
                      "choices": [{"name": "a", "value": "a", "name_localizations": {"pt-BR": "á"}}]}]}
MENU = {"type": 3, "name": "Speak this message", "name_localizations": {"ja": "このメッセージを読み上げ"}}


async def put(emu: DiscordEmulator, commands: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    url = f"{emu.api_base}/applications/{emu.application_id}/guilds/{emu.guild.id}/commands"
    headers = {"Authorization": f"Bot {emu.token}", "User-Agent": "DiscordBot (test, 1)"}
    async with aiohttp.ClientSession() as http, http.put(url, json=commands, headers=headers) as response:
        return response.status, await response.json()


async def test_localized_commands_and_context_menus_with_spaces_are_registered(
    discord_emulator: DiscordEmulator,
) -> None:
    status, registered = await put(discord_emulator, [SPEAK, MENU])
    assert status == 200
    assert [command["name_localizations"]["ja"] for command in registered] == ["読み上げ", "このメッセージを読み上げ"]


@pytest.mark.parametrize(("commands", "problem"), [
    ([{**SPEAK, "name": "Speak"}], "'Speak' is not a valid command name"),
    ([{**SPEAK, "name_localizations": {"ja": "読み 上げ"}}], "'読み 上げ' is not a valid command name"),
    ([{**SPEAK, "name_localizations": {"de": "Sprechen"}}], "'Sprechen' is not a valid command name"),
    ([{**SPEAK, "name_localizations": {"jp": "読み上げ"}}], "'jp' is not a Discord locale"),
    ([{**SPEAK, "description_localizations": {"es": "Dilo."}}], "'es' is not a Discord locale"),
    ([SPEAK, {**SPEAK, "name": "say"}], "the name '読み上げ' is used twice in ja"),
    ([SPEAK, {**SPEAK, "name": "say", "name_localizations": {"fr": "speak"}}], "the name 'speak' is used twice in fr"),
    ([{**SPEAK, "options": [*SPEAK["options"], {**SPEAK["options"][0], "name": "words"}]}],  # type: ignore[list-item]
     "the name 'テキスト' is used twice in ja"),
])
async def test_commands_breaking_discords_rules_are_refused(
    discord_emulator: DiscordEmulator, commands: list[dict[str, Any]], problem: str
) -> None:
    status, answer = await put(discord_emulator, commands)
    assert status == 400 and answer["code"] == 50035
    assert any(problem in error for error in answer["errors"]["_commands"]), answer
    assert len(discord_emulator.failures) == 1  # a protocol violation by whoever sent it
    discord_emulator.failures.clear()
