"""The README is a quickstart that works when followed literally, and docs/ is a site MkDocs builds strictly.

What is checked here: the README's size, that its commands name the virtual environment's executables and only
subcommands that exist, that its links land on files (and anchors) that exist, that it says how long the tests
take and what needs PostgreSQL; that every page in docs/ is in the MkDocs nav; and the strict build itself when
MkDocs is installed (CI always builds it, in ``.ci/run``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
#: The issue's bound: a quickstart, not a manual.
README_LIMIT = 12 * 1024


def test_the_readme_is_a_quickstart_of_at_most_12_kib() -> None:
    assert len(README.encode()) <= README_LIMIT


def _code(markdown: str) -> str:
    """The README's code: fenced blocks and inline code spans, where commands are."""
    blocks = re.findall(r"```\w*\n(.*?)```", markdown, flags=re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL))
    return "\n".join(blocks + spans)


def test_readme_commands_use_the_virtual_environment_and_real_subcommands() -> None:
    used = re.findall(r"(\S*)speechbot (\w+)", _code(README))
    assert used, "the README shows no speechbot command"
    for prefix, subcommand in used:
        assert prefix.endswith(".venv/bin/"), f"`{prefix}speechbot {subcommand}`: say .venv/bin/speechbot"
        build_parser().parse_args([subcommand])  # an unknown subcommand exits here
    # pip, python, pytest and mkdocs too: the venv's own (python3 only makes the venv)
    bare = re.findall(r"(?<![\w/.-])(?<!-m )(pip|python|pytest|mkdocs) ", _code(README))
    assert bare == [], "say .venv/bin/<tool>"


def test_the_first_command_to_run_comes_after_the_token_is_explained() -> None:
    assert README.index("```sh") > README.index("Reset Token")


def _anchors(markdown: str) -> set[str]:
    """The ids MkDocs (and GitHub) give the headings: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL), flags=re.MULTILINE)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h.strip().lower())) for h in headings}


def test_every_readme_link_lands_on_a_file_and_heading_that_exist() -> None:
    links = re.findall(r"\]\((?!https?:)([^)#]*)(?:#([^)]*))?\)", README)
    assert links
    for target, anchor in links:
        path = ROOT / target if target else ROOT / "README.md"
        assert path.is_file(), target
        if anchor:
            assert anchor in _anchors(path.read_text()), f"{target}#{anchor}"


def test_the_readme_says_how_long_the_tests_take_and_what_needs_postgresql() -> None:
    assert re.search(r"about \d+[–-]\d+ minutes", README)
    for fact in ("SPEECHBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test", "skipped",
                 "tests/unit/storage/", "tests/e2e/test_shards.py", "real_servers"):
        assert fact in README, fact


def test_every_docs_page_is_in_the_mkdocs_nav_once() -> None:
    nav = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.MULTILINE)
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    """The same build as CI's, in this process: every link, anchor and nav entry resolves."""
    pytest.importorskip("mkdocs", reason="MkDocs is not installed (pip install -e '.[docs]'); CI builds the docs")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"), strict=True)
    build(config)  # raises mkdocs.exceptions.Abort on any warning in strict mode
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()
