"""Read-aloud: the bot reads the chat of a voice channel (or configured read channels) in voice.

``filters`` decides which messages are read (pure), ``queue`` orders them fairly and holds them briefly so
moderation can act, ``usage`` counts what was sent without a database write per request, ``reader`` decides what
is read and ties it to the voice sessions, ``utterance`` is what a queued message carries, and ``guild_reader``
feeds one guild's player from its queue. Synthesis goes through the bot's audio cache (:mod:`bot.speech.cache`).
"""
