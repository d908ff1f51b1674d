"""Every command the bot registers with Discord is documented: each slash command and context menu in the README's
commands table, and each invocable path (``/settings budget``) in docs/commands.md. A new command fails here until
it is written down."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cogs.in_process import InProcessBot
from tests.unit.cogs.test_help import registered_paths

ROOT = Path(__file__).resolve().parents[3]


def _readme_commands_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Commands")
    return readme[start:readme.index("\n## ", start + 1)]


async def test_every_registered_command_is_in_the_readme_and_the_command_reference(
    in_process_bot: InProcessBot,
) -> None:
    registered = in_process_bot.emu.commands[in_process_bot.emu.guild.id]
    table = _readme_commands_table()
    reference = (ROOT / "docs" / "commands.md").read_text()
    paths = registered_paths(registered)
    assert paths
    for path in sorted(paths):
        top, *sub = path.split()
        rows = [line for line in table.splitlines() if f"`/{top}" in line]
        assert rows, f"/{top} is missing from the README's commands table"
        if sub:  # the table may shorten "/settings show, reset, ..." but names every subcommand on the row
            assert any(f"`{sub[-1]}`" in row or f"/{path}`" in row or f"/{path} " in row for row in rows), (
                f"/{path} is missing from the README's commands table"
            )
        assert f"`/{path}`" in reference or f"`/{path} " in reference, f"/{path} is missing from docs/commands.md"
    menus = [c["name"] for c in registered if c.get("type", 1) != 1]
    assert menus
    for menu in menus:
        assert f"**{menu}**" in table and f"**{menu}**" in reference, menu
