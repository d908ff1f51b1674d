"""Speech synthesis: the request contract, the HTTP client and the offline engine (no discord.py imports)."""
