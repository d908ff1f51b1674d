"""The owner's one-screen summary of a running instance (``/owner stats``, ``speechbot stats``).

Two sources, named in the output:

- *live* numbers (servers, voice sessions, requests per engine, cache hit rate, errors by kind, failovers) come
  from the Prometheus metrics of one bot process since it started: ``/owner stats`` reads its own process's;
  ``speechbot stats`` scrapes ``/metrics`` on ``METRICS_PORT`` when the bot runs with it (or ``--metrics-url``);
- *stored* numbers (characters and requests today and this month, servers nearest their budgets, blocklists,
  engines switched off) come from the database, shared by every process.

Nothing here is secret: counts and IDs only, never message text or keys. Nothing here knows Discord.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bot.i18n import ENGLISH, translate
from bot.storage import BudgetUse, OwnerState, Store, Usage

#: Servers listed by how full their budgets are.
TOP_BUDGETS = 5


@dataclass(frozen=True, slots=True)
class EngineRequests:
    ok: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class LiveStats:
    """One process's counters since it started (from its metrics)."""

    servers: int
    voice_sessions: int
    requests: dict[str, EngineRequests] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    failovers: dict[str, int] = field(default_factory=dict)

    @property
    def cache_hit_rate(self) -> float | None:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else None


@dataclass(frozen=True, slots=True)
class StoredStats:
    """What the database says, for every process sharing it."""

    today: Usage
    month: Usage
    budgets: list[BudgetUse]
    owner: OwnerState


def live_stats(metrics_text: str) -> LiveStats:
    """The numbers of a Prometheus text exposition of :class:`bot.metrics.Metrics`."""
    gauges: dict[str, float] = {}
    requests: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    errors: dict[str, int] = defaultdict(int)
    failovers: dict[str, int] = defaultdict(int)
    hits = misses = 0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, int(sample.value)
            if name in ("speechbot_guilds", "speechbot_voice_sessions"):
                gauges[name] = sample.value
            elif name == "speechbot_speech_requests_total":
                requests[labels["backend"]][0 if labels["outcome"] == "ok" else 1] += value
            elif name == "speechbot_speech_errors_total":
                errors[labels["kind"]] += value
            elif name == "speechbot_speech_failovers_total":
                failovers[f"{labels['engine']} ({labels['reason']})"] += value
            elif name == "speechbot_cache_hits_total":
                hits += value
            elif name == "speechbot_cache_misses_total":
                misses += value
    return LiveStats(
        servers=int(gauges.get("speechbot_guilds", 0)),
        voice_sessions=int(gauges.get("speechbot_voice_sessions", 0)),
        requests={engine: EngineRequests(ok, failed) for engine, (ok, failed) in sorted(requests.items())},
        cache_hits=hits,
        cache_misses=misses,
        errors=dict(sorted(errors.items(), key=lambda item: (-item[1], item[0]))),
        failovers=dict(sorted(failovers.items())),
    )


async def stored_stats(store: Store, today: date) -> StoredStats:
    """Usage of every server today and this month (UTC), the fullest budgets, the owner's controls."""
    month_start = today.replace(day=1)
    return StoredStats(
        today=await store.usage_everywhere(today),
        month=await store.usage_everywhere(month_start),
        budgets=(await store.budget_use(today, month_start))[:TOP_BUDGETS],
        owner=await store.owner_state(),
    )


def render(live: LiveStats | None, stored: StoredStats, *, live_source: str, language: str = ENGLISH) -> list[str]:
    """The summary as lines of plain text (also fine as Discord markdown), in ``language`` (``/owner stats``: the
    owner's; ``speechbot stats``: English); ``live_source`` says where the live numbers came from, or why there are
    none. Counts are written as digits without grouping, as the English always was."""
    none = translate(language, "none")
    lines = [translate(language, "Live ({source}):", source=live_source)]
    if live is None:
        lines.append("  " + translate(language, "not available"))
    else:
        rate = translate(language, "no lookups yet") if live.cache_hit_rate is None else translate(
            language, "{rate} ({hits} of {lookups})", rate=f"{live.cache_hit_rate:.0%}", hits=str(live.cache_hits),
            lookups=str(live.cache_hits + live.cache_misses))
        requests = ", ".join(
            translate(language, "{engine} {ok} ok / {failed} failed", engine=engine, ok=str(counts.ok),
                      failed=str(counts.failed))
            for engine, counts in live.requests.items()) or translate(language, "none yet")
        lines += ["  " + line for line in (
            translate(language, "servers: {servers}   voice sessions: {sessions}", servers=str(live.servers),
                      sessions=str(live.voice_sessions)),
            translate(language, "requests per engine: {requests}", requests=requests),
            translate(language, "audio cache hit rate: {rate}", rate=rate),
            translate(language, "errors by kind: {errors}",
                      errors=", ".join(f"{kind} {count}" for kind, count in live.errors.items()) or none),
            translate(language, "failovers: {failovers}",
                      failovers=", ".join(f"{what} {count}" for what, count in live.failovers.items()) or none),
        )]
    owner = stored.owner
    budgets = "; ".join(_budget(use, language) for use in stored.budgets) or translate(
        language, "no server has a budget")
    lines += [
        translate(language, "Stored (the database, every process):"),
        *("  " + line for line in (
            translate(language, "today (UTC): {usage}", usage=_usage(stored.today, language)),
            translate(language, "this month: {usage}", usage=_usage(stored.month, language)),
            translate(language, "budget use: {budgets}", budgets=budgets),
            translate(language, "blocked: {users} user(s), {servers} server(s)", users=str(len(owner.blocked_users)),
                      servers=str(len(owner.blocked_guilds))),
            translate(language, "engines switched off: {engines}",
                      engines=", ".join(sorted(owner.disabled_engines)) or none),
        )),
    ]
    return lines


def as_json(live: LiveStats | None, stored: StoredStats, *, live_source: str) -> dict[str, Any]:
    """The same numbers for scripts (``speechbot stats --json``)."""
    return {
        "live_source": live_source,
        "live": None if live is None else {**asdict(live), "cache_hit_rate": live.cache_hit_rate},
        "stored": {
            "today": asdict(stored.today),
            "month": asdict(stored.month),
            "budgets": [asdict(use) for use in stored.budgets],
            "blocked_users": sorted(map(str, stored.owner.blocked_users)),
            "blocked_guilds": sorted(map(str, stored.owner.blocked_guilds)),
            "disabled_engines": sorted(stored.owner.disabled_engines),
        },
    }


def _usage(usage: Usage, language: str) -> str:
    if usage.fallback_requests:
        return translate(
            language, "{characters} characters in {requests} request(s) to the speech service, {fallback_characters} "
            "in {fallback_requests} by the fallback", characters=str(usage.characters), requests=str(usage.requests),
            fallback_characters=str(usage.fallback_characters), fallback_requests=str(usage.fallback_requests))
    return translate(language, "{characters} characters in {requests} request(s) to the speech service",
                     characters=str(usage.characters), requests=str(usage.requests))


def _budget(use: BudgetUse, language: str) -> str:
    parts = []
    if use.daily_budget:
        parts.append(translate(language, "{used}/{budget} today", used=str(use.today), budget=str(use.daily_budget)))
    if use.monthly_budget:
        parts.append(translate(language, "{used}/{budget} this month", used=str(use.month),
                               budget=str(use.monthly_budget)))
    return translate(language, "server {id}: {budgets}", id=str(use.guild_id), budgets=", ".join(parts))
