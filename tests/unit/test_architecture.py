"""The import rules of docs/ARCHITECTURE.md, checked on the source: a change that breaks a layer fails here."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from tests.support import pyast

ROOT = Path(__file__).resolve().parents[2]
#: Layers that know nothing of Discord: they take ids and plain values, so they run (and are tested) without it.
DISCORD_FREE = ("bot/text", "bot/i18n", "bot/audio", "bot/speech", "bot/storage", "bot/readaloud",
                "bot/policy.py", "bot/usage.py", "bot/speech_service.py", "bot/services.py", "bot/config.py",
                "bot/owner_controls.py", "bot/stats.py")
#: discord.py modules that are not its public API: only these files may import them.
PRIVATE_DISCORD_MODULES = ("discord.gateway", "discord.http", "discord.state", "discord.voice_state")
PRIVATE_DISCORD_IMPORTERS = ("bot/discord_internals.py", "bot/discord_endpoints.py", "bot/voice/connection.py",
                             "bot/voice/voice_client.py")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level and TYPE_CHECKING imports included)."""
    found: set[str] = set()
    for node in ast.walk(pyast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def offenders(paths: list[Path], bad: Callable[[str], bool]) -> dict[str, list[str]]:
    found = {relative(path): sorted(m for m in imports(path) if bad(m)) for path in paths}
    return {path: modules for path, modules in found.items() if modules}


def test_bot_never_imports_cogs() -> None:
    assert offenders(sources("bot"), lambda m: m == "cogs" or m.startswith("cogs.")) == {}


def test_cogs_never_import_each_other() -> None:
    """What cogs share lives in ``bot/interactions.py``."""
    assert offenders(sources("cogs"), lambda m: m.startswith("cogs.")) == {}


def test_the_core_layers_do_not_know_discord() -> None:
    core = [p for p in sources("bot") if relative(p).startswith(DISCORD_FREE)]
    assert len(core) > 40
    assert offenders(core, lambda m: m == "discord" or m.startswith("discord.")) == {}


def test_discord_internals_are_imported_only_behind_the_seam() -> None:
    others = [p for p in sources("bot") + sources("cogs") if relative(p) not in PRIVATE_DISCORD_IMPORTERS]
    assert offenders(others, lambda m: m.startswith(PRIVATE_DISCORD_MODULES)) == {}
