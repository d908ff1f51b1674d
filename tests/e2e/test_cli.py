"""The ``speechbot`` command line: one-line errors, exit codes, invite URL (as a real subprocess)."""

import base64
import os
import subprocess
import sys
from pathlib import Path

from tests.support.bot_process import checkout_pythonpath

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPEECH_", "DEV_GUILD"))}
    base["PYTHONPATH"] = checkout_pythonpath()  # this checkout's code, whichever checkout the venv installed
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invite_reads_the_application_id_from_the_token(tmp_path: Path) -> None:
    token = base64.b64encode(b"123456789012345678").decode().rstrip("=") + ".GxYz12.secretpart"
    result = run_cli("invite", env={"DISCORD_TOKEN": token}, cwd=tmp_path)
    assert result.returncode == 0
    url = result.stdout.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=123456789012345678")
    assert "scope=bot+applications.commands" in url and "permissions=3197952" in url
    assert "secretpart" not in result.stdout + result.stderr


def test_invite_without_token_or_id_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run_cli("invite", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--client-id" in result.stderr
    assert "Traceback" not in result.stderr


def test_configuration_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("say", "hi", env={"SPEECH_BACKEND": "cloud", "LOG_LEVEL": "LOUD"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "SPEECH_BACKEND" in result.stderr and "LOG_LEVEL" in result.stderr


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SPEECH_BACKEND=nonsense\n")
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and "SPEECH_BACKEND" in result.stderr


def test_run_without_token_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli("run", env={"DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr and "Traceback" not in result.stderr
