"""Shared fixtures. The loopback doubles live in ``tests/loopback`` and are loaded as plugins."""

pytest_plugins = [
    "tests.loopback.discord_fixtures",
    "tests.loopback.speech_fixtures",
    "tests.loopback.realtime_fixtures",
    "tests.storage_fixtures",
    "tests.bot_fixtures",
    "tests.e2e.compat",
]
