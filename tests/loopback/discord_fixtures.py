"""Pytest fixtures for the loopback Discord (filled in by the emulator work)."""
