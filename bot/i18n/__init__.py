"""Every language the bot speaks and writes in: gettext catalogues (``bot/i18n/locales``), read with Babel.

One catalogue per language holds three kinds of text: the command surface (names, descriptions, option and
choice names, under the message contexts of :data:`SURFACE_CONTEXTS`), replies to the person who ran a command,
and the phrases read aloud around messages ("Alice said", "a link to …"). English is the source language: a
message id is its English text, with ``{name}`` placeholders filled in after translation, so a missing
translation reads in English rather than failing.

The ``.po`` files are loaded directly at start-up (Babel's ``read_po``, compiled in memory): there is no build
step and no ``.mo`` file to forget. See docs/languages.md for how to add a language.
"""

from bot.i18n.catalogs import (
    ENGLISH,
    LANGUAGES,
    N_,
    SURFACE_CONTEXTS,
    Text,
    babel_locale,
    language_of,
    surface_text,
    translate,
    translate_plural,
)

__all__ = [
    "ENGLISH",
    "LANGUAGES",
    "N_",
    "SURFACE_CONTEXTS",
    "Text",
    "babel_locale",
    "language_of",
    "surface_text",
    "translate",
    "translate_plural",
]
