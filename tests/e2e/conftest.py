"""End-to-end tests only: the ``bot`` fixture (the real bot process against the loopback doubles)."""

from tests.support.bot_fixtures import bot  # noqa: F401 - a fixture, registered by being imported here
