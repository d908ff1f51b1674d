"""Shared fixtures. The loopback doubles live in ``tests/loopback`` and are loaded as plugins; the fixture that
starts the real bot process (``bot``) is only visible to ``tests/e2e/`` (its conftest)."""

pytest_plugins = [
    "tests.loopback.discord_fixtures",
    "tests.loopback.speech_fixtures",
    "tests.loopback.realtime_fixtures",
    "tests.support.storage_fixtures",
]
