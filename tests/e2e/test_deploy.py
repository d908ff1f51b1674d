"""The deployment recipes against the real thing: every query of the Grafana dashboard names metrics (and labels)
that a running bot really exports on ``/metrics``, and systemd accepts the unit file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.bot_process import running_bot
from tests.support.metrics import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/speechbot.json"

#: PromQL's functions, aggregations and keywords the dashboard may use (anything else must be a metric).
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without",
    "ignoring", "on", "group_left", "group_right", "and", "or", "unless", "clamp_min", "topk",
}


def exported_series(text: str) -> dict[str, set[str]]:
    """Every sample name a scrape can contain (from the ``# TYPE`` lines, so labelled metrics that have no series
    yet count too), with the label names seen on its samples."""
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"# TYPE (\w+) (\w+)", line):
            name, kind = match.groups()
            suffixes = {"histogram": ("_bucket", "_sum", "_count", "_created"), "counter": ("", "_created")}
            stem = name.removesuffix("_total") if kind == "counter" else name
            for suffix in suffixes.get(kind, ("",)):
                names[name + suffix if kind != "counter" or suffix == "" else stem + suffix] = set()
        elif match := re.fullmatch(r"(\w+)\{(.*)\} \S+", line):
            names.setdefault(match.group(1), set()).update(re.findall(r'(\w+)="', match.group(2)))
    return names


def query_problems(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """Metric names the query uses that are not exported, and grouping labels none of its metrics carry."""
    grouping = re.findall(r"\b(?:by|without|ignoring|on)\s*\(([^)]*)\)", expr)
    labels = {label.strip() for group in grouping for label in group.split(",") if label.strip()}
    bare = re.sub(r"\b(?:by|without|ignoring|on)\s*\([^)]*\)", " ", expr)
    bare = re.sub(r"\[[^\]]*\]|\"[^\"]*\"|\{[^}]*\}", " ", bare)  # ranges, strings, selectors
    words = set(re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_]*\b", bare))
    metrics = words - PROMQL_WORDS
    problems = [f"{name} is not exported" for name in sorted(metrics) if name not in exported]
    if not metrics:
        problems.append("no metric")
    carried = {"le"} | {label for name in metrics for label in exported.get(name, set())}
    problems += [f"no metric of it has the label {label!r}" for label in sorted(labels - carried)]
    return problems


async def test_every_dashboard_query_names_what_the_running_bot_exports(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, port = discord_emulator, free_port()
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "METRICS_PORT": str(port), "SPEECH_FALLBACK": "local"}
    async with running_bot(emu, tmp_path, **env), aiohttp.ClientSession() as http:
        # A request spoken by the endpoint, then one it refuses for want of credit, which the offline engine
        # speaks: the labelled series (engine, error kind, failover reason, cache tier) exist with their labels.
        for text in ("Hello world.", "Good morning."):
            interaction = await emu.invoke("speak", {"text": text}, user=emu.user, guild=emu.guild,
                                           channel=emu.text_channel)
            await interaction.wait_message(timeout=60)
            speech_endpoint.inject(Fault(status=429, code="insufficient_quota", error_type="insufficient_quota"))
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            exported = exported_series(await response.text())
    assert exported["speechbot_speech_errors_total"] == {"backend", "kind"}
    assert exported["speechbot_speech_failovers_total"] == {"engine", "reason"}
    dashboard = json.loads(DASHBOARD.read_text())
    problems = {
        f"{panel['title']} / {target['refId']}": found
        for panel in dashboard["panels"] for target in panel["targets"]
        if (found := query_problems(target["expr"], exported))
    }
    assert problems == {}


def test_a_query_with_a_misspelt_metric_or_label_is_caught() -> None:
    exported = {"speechbot_speech_requests_total": {"backend", "outcome"}}
    assert query_problems("sum by (backend) (rate(speechbot_speech_requests_total[5m]))", exported) == []
    assert query_problems("sum(rate(speechbot_speech_request_total[5m]))", exported) == [
        "speechbot_speech_request_total is not exported"]
    assert query_problems("sum by (engine) (rate(speechbot_speech_requests_total[5m]))", exported) == [
        "no metric of it has the label 'engine'"]
    assert exported_series("# TYPE x_seconds histogram\n# TYPE y_total counter\n# TYPE z gauge\n") == {
        name: set() for name in ("x_seconds_bucket", "x_seconds_sum", "x_seconds_count", "x_seconds_created",
                                 "y_total", "y_created", "z")}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` checks every directive; it also wants ExecStart's program to exist, so the copy
    verified here runs this venv's ``speechbot`` (the install script puts the real one at the unit's path)."""
    unit = (ROOT / "deploy/speechbot.service").read_text()
    installed = Path(sys.executable).parent / "speechbot"
    assert installed.exists()
    copy = tmp_path / "speechbot.service"
    copy.write_text(unit.replace("/opt/speechbot/.venv/bin/speechbot", str(installed)))
    assert copy.read_text() != unit
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
