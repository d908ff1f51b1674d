"""Turning Discord messages into speakable text: pure functions, no discord.py.

``clean_message`` is the entry point for read-aloud; ``apply_dictionary`` applies a server's pronunciation
dictionary to its result; ``split_for_speech`` cuts long texts into speech requests.
"""

from bot.text.cleaning import clean_message, clean_text, display_name_for_speech
from bot.text.dictionary import DictionaryEntry, DictionaryError, apply_dictionary, validate_entry
from bot.text.models import CleaningOptions, MessageInput
from bot.text.names import should_prefix_name
from bot.text.splitting import split_for_speech, truncate

__all__ = [
    "CleaningOptions",
    "DictionaryEntry",
    "DictionaryError",
    "MessageInput",
    "apply_dictionary",
    "clean_message",
    "clean_text",
    "display_name_for_speech",
    "should_prefix_name",
    "split_for_speech",
    "truncate",
    "validate_entry",
]
