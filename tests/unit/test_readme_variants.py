"""The README's variants, followed literally: ``cp .env.example .env``, the token, then each row's lines. Each
must load and pick the engine the row promises (the one-line errors of the others are tested in tests/e2e)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
#: What the README's placeholders stand for.
PLACEHOLDERS = {"<your key>": "key-123", "sk-…": "sk-123", "host:port": "127.0.0.1:8880",
                "user:password@host:5432/dbname": "bot:secret@db.internal:5432/speechbot"}
#: Row (its first cell) → the engine it promises.
EXPECTED = {
    "offline speech, no account anywhere": "local",
    "apimart (the default endpoint)": "openai",
    "OpenAI's `/audio/speech`": "openai",
    "OpenAI's Realtime API": "realtime",
    "a self-hosted server (Kokoro, LocalAI, Piper servers…)": "openai",
    "PostgreSQL instead of SQLite": "local",
}


def variant_rows() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| You want | Do |"):].split("\n\n", 1)[0]
    rows = [line.split(" | ", 1) for line in table.splitlines()[2:]]
    return {first.removeprefix("| "): rest for first, rest in rows}


def env_file() -> dict[str, str]:
    example = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", example, flags=re.MULTILINE))


def lines_of(row: str) -> dict[str, str]:
    for placeholder, value in PLACEHOLDERS.items():
        row = row.replace(placeholder, value)
    return dict(re.findall(r"`([A-Z][A-Z0-9_]+)=([^`]*)`", row))


def test_every_variant_row_is_checked() -> None:
    assert set(variant_rows()) - {"Docker or systemd"} == set(EXPECTED)


@pytest.mark.parametrize("want", list(EXPECTED))
def test_a_variant_followed_literally_loads_and_picks_its_engine(want: str) -> None:
    rows = variant_rows()
    env = {**env_file(), "DISCORD_TOKEN": "token"}
    if rows[want].startswith("the above"):
        env.update(lines_of(rows[list(rows)[list(rows).index(want) - 1]]))
    env.update(lines_of(rows[want]))
    settings = load_settings(env)
    assert settings.engine_name == EXPECTED[want]
    if want.startswith("PostgreSQL"):
        assert settings.database_url.startswith("postgresql://")
