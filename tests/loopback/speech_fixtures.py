"""Pytest fixtures for the loopback speech endpoint."""
