"""Shared fixtures. The loopback doubles live in ``tests/loopback`` and are loaded as plugins."""

pytest_plugins = [
    "tests.loopback.discord_fixtures",
    "tests.loopback.speech_fixtures",
    "tests.loopback.realtime_fixtures",
    "tests.support.storage_fixtures",
    "tests.support.bot_fixtures",
]
