"""The README's bot recipe, run as written (after the install, which CI's venv already did): in a fresh directory
it stops with exactly the line the README quotes; with the token in ``.env`` there, as step 1 says, the invite
command the README names prints the URL with the permissions docs/discord-application.md lists."""

from __future__ import annotations

import base64
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.support.bot_process import checkout_pythonpath

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
#: The install steps the CI venv has already done; what follows them is what a reader runs next.
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e '.[local]' && "


def readme_command(after: str) -> list[str]:
    """The first ``sh`` block after the heading ``after``, its install steps removed, the venv made this one."""
    block = re.search(r"```sh\n(.*?)\n```", README[README.index(after):], flags=re.DOTALL)
    assert block is not None
    line = block.group(1)
    assert line.startswith(INSTALL), line
    return [arg.replace(".venv/bin/", f"{Path(sys.executable).parent}/") for arg in shlex.split(line[len(INSTALL):])]


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPEECH_", "DEV_GUILD"))}
    env["PYTHONPATH"] = checkout_pythonpath()
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_the_bot_command_without_a_token_stops_with_the_line_the_readme_quotes(tmp_path: Path) -> None:
    result = run(readme_command("## 2. Set up and run the bot"), tmp_path)
    assert result.returncode == 2
    quoted = re.search(r"Without a token\s+it stops at once with one line: `([^`]+)`", README)
    assert quoted is not None
    assert result.stderr == " ".join(quoted.group(1).split()) + "\n"
    assert not (tmp_path / "data").exists(), "nothing is written before the settings are known to be good"


def test_with_the_token_in_dot_env_the_readme_s_invite_command_prints_the_url(tmp_path: Path) -> None:
    application_id = "123456789012345678"
    token = base64.b64encode(application_id.encode()).decode().rstrip("=") + ".GxYz12.secretpart"
    example = (ROOT / ".env.example").read_text()
    (tmp_path / ".env").write_text(example.replace("\nDISCORD_TOKEN=\n", f"\nDISCORD_TOKEN={token}\n"))
    invite = re.search(r"`(\.venv/bin/speechbot invite)`", README)
    assert invite is not None
    result = run([f"{Path(sys.executable).parent}/speechbot", "invite"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        "&scope=bot+applications.commands&permissions=70368747375616"
    )
    assert "70368747375616" in (ROOT / "docs" / "discord-application.md").read_text()
