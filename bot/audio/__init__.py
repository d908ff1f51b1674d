"""Audio formats and in-process encoding with PyAV (no discord.py imports here)."""
