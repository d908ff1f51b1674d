"""The test tree's own rules (docs/testing.md, "Tests"):

- every test file sits in ``tests/unit/`` (mirroring ``bot/`` and ``cogs/``), ``tests/e2e/`` or
  ``tests/loopback_tests/``; this file is the only flat ``tests/test_*.py``;
- a test in ``tests/unit/`` or ``tests/loopback_tests/`` runs inside the pytest process: it does not import the
  bot-process helpers and starts no subprocess (those tests belong in ``tests/e2e/``);
- every test directory is a package, so two ``test_cache.py`` in different directories do not collide.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import pyast

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TREES = ("unit", "e2e", "loopback_tests")
IN_PROCESS_TREES = ("unit", "loopback_tests")

#: Modules whose import means "this test starts a process".
PROCESS_MODULES = {
    "subprocess",
    "multiprocessing",
    "tests.support.bot_process",
    "tests.support.bot_launcher",
    "tests.support.bot_fixtures",
    "tests.support.voice_helpers",
}
#: Calls that start a process without importing one of the modules above.
PROCESS_CALLS = {
    "create_subprocess_exec", "create_subprocess_shell", "system", "popen", "fork", "forkpty",
    "execv", "execve", "execvp", "spawnl", "spawnv", "spawnve", "posix_spawn", "posix_spawnp",
}


def process_problems(source: str) -> list[str]:
    """Why a test module's source is not an in-process test (empty if it is one)."""
    problems: list[str] = []
    for node in ast.walk(pyast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            names = []
        problems += [f"line {node.lineno}: imports {name}" for name in names if name in PROCESS_MODULES]
        if isinstance(node, ast.Attribute) and node.attr in PROCESS_CALLS:
            base = node.value.id if isinstance(node.value, ast.Name) else ""
            if base in {"asyncio", "os", "pty"}:
                problems.append(f"line {node.lineno}: calls {base}.{node.attr}")
        if isinstance(node, ast.arg) and node.arg == "bot" and _uses_the_process_fixture(source):
            problems.append(f"line {node.lineno}: asks for the `bot` fixture (the real bot process)")
    return problems


def _uses_the_process_fixture(source: str) -> bool:
    """A parameter named ``bot`` is the process fixture unless the module defines its own ``bot``."""
    return "def bot(" not in source


def test_no_flat_test_files() -> None:
    flat = sorted(p.name for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    assert flat == [], f"move these into tests/unit/, tests/e2e/ or tests/loopback_tests/: {flat}"


def test_every_test_file_is_in_one_of_the_trees() -> None:
    misplaced = [
        str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py")
        if p.parent != TESTS and p.relative_to(TESTS).parts[0] not in TREES
    ]
    assert misplaced == []


def test_every_test_directory_is_a_package() -> None:
    missing = [
        str(d.relative_to(TESTS)) for tree in TREES for d in [TESTS / tree, *(TESTS / tree).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and not (d / "__init__.py").exists()
    ]
    assert missing == []


def test_unit_directories_mirror_the_source_packages() -> None:
    unit = TESTS / "unit"
    strays = [
        str(d.relative_to(unit)) for d in unit.rglob("*")
        if d.is_dir() and d.name != "__pycache__"
        and not (ROOT / "bot" / d.relative_to(unit)).is_dir()
        and not (d.relative_to(unit).parts[0] == "cogs" and (ROOT / d.relative_to(unit)).is_dir())
    ]
    assert strays == [], "tests/unit/<x>/ mirrors bot/<x>/, and tests/unit/cogs/ the cogs/ package"


@pytest.mark.parametrize(
    "path",
    sorted(p for tree in IN_PROCESS_TREES for p in (TESTS / tree).rglob("*.py")),
    ids=lambda p: str(p.relative_to(TESTS)),
)
def test_in_process_tests_start_no_process(path: Path) -> None:
    assert process_problems(path.read_text()) == [], f"{path.relative_to(TESTS)} belongs in tests/e2e/"


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess",
        "from tests.support.bot_process import running_bot",
        "from tests.support import bot_process",
        "from tests.support.voice_helpers import voice_bot",
        "import asyncio\nasync def f():\n    await asyncio.create_subprocess_exec('x')",
        "import os\nos.system('x')",
        "async def test_x(bot):\n    pass",
    ],
)
def test_the_process_check_catches(source: str) -> None:
    assert process_problems(source)


def test_the_process_check_lets_in_process_tests_through() -> None:
    source = (
        "import asyncio\nfrom tests.loopback.discord import DiscordEmulator\n"
        "import pytest\n@pytest.fixture\ndef bot():\n    return object()\n"
        "async def test_x(bot, discord_emulator):\n    await asyncio.sleep(0)\n"
    )
    assert process_problems(source) == []
