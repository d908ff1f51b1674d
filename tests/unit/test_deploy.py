"""The deployment recipes in ``deploy/`` fit together: the compose file (checked against the Compose
Specification's schema), the Prometheus scrape target, Grafana's provisioning and dashboard, and the systemd unit
with its install script. Whether the dashboard's queries name metrics the bot really exports is checked against
a running bot in ``tests/e2e/test_deploy.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from bot.cli import EXIT_USAGE
from bot.config import load_settings
from bot.metrics import METRICS_PATH

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(DEPLOY / "compose.yaml")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${NAME:?message}`` / ``${NAME}`` interpolation, for the variables given."""
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: variables[m.group(1)], value)


def service_environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = compose["services"][name].get("environment", {})
    return {key: interpolate(str(value), {"POSTGRES_PASSWORD": "pw", "GRAFANA_ADMIN_PASSWORD": "pw"})
            for key, value in env.items()}


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests/specs/compose-spec.json").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []
    assert set(compose["services"]) == {"bot", "postgres", "prometheus", "grafana"}


def test_every_service_waited_for_as_healthy_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    waits = {(name, dep, cond["condition"]) for name, svc in services.items()
             for dep, cond in svc.get("depends_on", {}).items()}
    assert ("bot", "postgres", "service_healthy") in waits
    assert ("grafana", "prometheus", "service_healthy") in waits
    for _, dep, condition in waits:
        assert dep in services
        if condition == "service_healthy":
            assert services[dep]["healthcheck"]["test"], dep


def test_paths_named_by_the_compose_file_exist(compose: dict[str, Any]) -> None:
    bot = compose["services"]["bot"]
    context = (DEPLOY / bot["build"]["context"]).resolve()
    assert context == ROOT and (context / bot["build"]["dockerfile"]).is_file()
    (env_file,) = bot["env_file"]
    assert (DEPLOY / (env_file["path"] + ".example")).resolve() == ROOT / ".env.example"
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in declared, f"{name}: {source}"


def test_every_variable_the_compose_file_needs_is_named_where_it_says_to_set_it() -> None:
    """Not in .env.example (which documents exactly what the bot reads): in the compose file's header and in
    docs/deploy.md, and Compose names a missing one itself (``${NAME:?...}``)."""
    compose_text = (DEPLOY / "compose.yaml").read_text()
    needed = set(re.findall(r"\$\{(\w+)", compose_text))
    assert needed == {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    assert set(re.findall(r"\$\{(\w+):\?", compose_text)) == needed
    header = compose_text.split("\nname:", 1)[0]
    guide = (ROOT / "docs/deploy.md").read_text()
    assert all(f"{name}=" in header and f"{name}=" in guide for name in needed)


def test_the_bot_service_uses_postgres_and_serves_metrics_to_the_network(compose: dict[str, Any]) -> None:
    env = service_environment(compose, "bot")
    settings = load_settings(env)  # what the bot itself makes of it
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_port == 9108
    database = urlsplit(settings.database_url)
    postgres = service_environment(compose, "postgres")
    assert database.scheme == "postgresql" and database.hostname == "postgres"
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], "/" + postgres["POSTGRES_DB"])
    healthcheck = " ".join(compose["services"]["bot"]["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.metrics_port}/healthz" in healthcheck
    assert "ports" not in compose["services"]["bot"]  # metrics stay inside the compose network


def test_prometheus_scrapes_the_bot_service_where_it_serves_metrics(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    config_file = next(arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file="))
    (source,) = [src for src, target in mounts.items() if target == config_file]
    config = load_yaml(DEPLOY / source)
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    port = service_environment(compose, "bot")["METRICS_PORT"]
    assert static["targets"] == [f"bot:{port}"]
    assert job.get("metrics_path", "/metrics") == METRICS_PATH


def test_grafana_is_provisioned_with_the_prometheus_service_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {target: DEPLOY / source for source, target, *_ in (v.split(":") for v in grafana["volumes"])
              if source.startswith(".")}
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = load_yaml(provisioning / "datasources/prometheus.yaml")["datasources"]
    url = urlsplit(datasource["url"])
    assert datasource["type"] == "prometheus" and url.hostname == "prometheus" and url.port == 9090
    assert "--web.listen-address" not in " ".join(compose["services"]["prometheus"]["command"])  # 9090 stays
    (provider,) = load_yaml(provisioning / "dashboards/speechbot.yaml")["providers"]
    dashboards = mounts[provider["options"]["path"]]
    (dashboard_file,) = dashboards.glob("*.json")
    dashboard = json.loads(dashboard_file.read_text())
    assert [p["id"] for p in dashboard["panels"]] == list(range(1, len(dashboard["panels"]) + 1))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] and t["datasource"]["uid"] == datasource["uid"]
                                        for t in panel["targets"]), panel["title"]
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]  # the admin login is not offered to the world


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/speechbot.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric, what in [
        ("speechbot_speech_requests_total", "speech requests per engine"),
        ("speechbot_speech_time_to_first_byte_seconds_bucket", "latency per engine"),
        ("speechbot_voice_sessions", "voice sessions"),
        ("speechbot_cache_hits_total", "cache hit rate"),
        ("speechbot_cache_misses_total", "cache hit rate"),
        ("speechbot_speech_errors_total", "errors by kind"),
        ("speechbot_budget_characters_total", "budget use"),
        ("speechbot_budget_refusals_total", "budget use"),
    ]:
        assert metric in queries, what


def unit_directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a systemd unit, every value of repeated keys kept."""
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def test_the_systemd_unit_runs_the_installed_bot_as_the_service_user() -> None:
    unit = unit_directives((DEPLOY / "speechbot.service").read_text())
    script = (DEPLOY / "install-systemd.sh").read_text()
    prefix = re.search(r"^PREFIX=(\S+)$", script, re.MULTILINE)
    config_dir = re.search(r"^CONFIG_DIR=(\S+)$", script, re.MULTILINE)
    assert prefix and config_dir
    assert unit["ExecStart"] == [f"{prefix.group(1)}/.venv/bin/speechbot run"]
    assert unit["EnvironmentFile"] == [f"{config_dir.group(1)}/speechbot.env"]
    assert unit["User"] == unit["Group"] == ["speechbot"]
    # DATA_DIR is the state directory systemd creates for the user (writable under ProtectSystem=strict).
    assert unit["StateDirectory"] == ["speechbot"] and unit["ProtectSystem"] == ["strict"]
    assert unit["WorkingDirectory"] == ["/var/lib/speechbot"]
    assert unit["Environment"] == ["DATA_DIR=/var/lib/speechbot"]
    assert unit["RestartPreventExitStatus"] == [str(EXIT_USAGE)] and unit["Restart"] == ["on-failure"]
