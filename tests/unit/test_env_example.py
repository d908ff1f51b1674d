"""``.env.example`` works as it is with each speech endpoint example the docs give (issue 16 item 7): copied
to ``.env`` with only that example's settings changed, the bot accepts the configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def endpoint_examples() -> dict[str, dict[str, str]]:
    """The rows of the docs' "| Endpoint | Settings |" table (README.md or docs/*.md, wherever it lives now): each
    endpoint's `KEY=value` settings, placeholders and "…" left out."""
    examples: dict[str, dict[str, str]] = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        start = text.find("| Endpoint | Settings |")
        if start < 0:
            continue
        for row in text[start:].splitlines()[2:]:
            if not row.startswith("|"):
                break
            endpoint, settings = (cell.strip() for cell in row.strip("|").split("|", 1))
            pairs = re.findall(r"`([A-Z_]+)=([^`]*)`", settings)
            examples[endpoint] = {key: re.sub(r",?…$", "", value).replace("<key>", "sk-example")
                                  for key, value in pairs}
    return examples


EXAMPLES = endpoint_examples()


def test_the_docs_give_the_endpoint_examples() -> None:
    assert {"OpenAI", "Kokoro-FastAPI", "OpenAI Realtime API"} <= set(EXAMPLES)


@pytest.mark.parametrize("endpoint", sorted(EXAMPLES))
def test_env_example_works_with_each_endpoint_example(endpoint: str, tmp_path: Path) -> None:
    env = {key: value or "" for key, value in dotenv_values(ROOT / ".env.example").items()}
    env.update(EXAMPLES[endpoint], DATA_DIR=str(tmp_path))
    if env.get("SPEECH_BACKEND") == "openai" and "SPEECH_API_BASE_URL" not in EXAMPLES[endpoint]:
        # A self-hosted server whose row leaves its address to the reader (openedai-speech, LocalAI): where it
        # runs, as .env.example's comment shows. Without it the bot rightly wants a key for apimart.
        env["SPEECH_API_BASE_URL"] = "http://localhost:8000/v1"
    try:
        settings = load_settings(env)
    except ConfigError as error:
        pytest.fail(f"{endpoint}: {' '.join(error.problems)}")
    if voices := EXAMPLES[endpoint].get("SPEECH_VOICES"):
        assert settings.default_voice == voices.split(",")[0]
