"""The catalogues, loaded once per process, and the functions that look text up in them.

Languages are named by Discord's locale codes (``ja``, ``es-ES``, ``pt-BR``): the same code is an interaction's
``locale``, a server's ``/settings language`` and a key of ``LOCAL_VOICES``. Other codes of the same language
("es-419", "pt") use its catalogue; anything else is English.
"""

from __future__ import annotations

import gettext
import io
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

#: The source language; its text is the message ids, so it has no catalogue.
ENGLISH = "en"
#: Discord locale → the catalogue's directory under :data:`LOCALES_DIR` (gettext's naming).
LANGUAGES: Mapping[str, str] = {
    "ja": "ja",
    "ko": "ko",
    "de": "de",
    "fr": "fr",
    "es-ES": "es_ES",
    "pt-BR": "pt_BR",
}
LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "speechbot"
#: Message contexts of the command surface. Names (of commands, groups and options) are Discord-constrained
#: (lowercase, no spaces, at most 32 characters); descriptions at most 100; choice and menu names at most 100.
SURFACE_CONTEXTS = ("name", "description", "choice", "menu")

_FIELDS = string.Formatter()


def N_(message: str) -> str:  # gettext's name for "mark for extraction, translate later"
    """Marks a message id for extraction where it is translated later (kept in a :class:`Text`)."""
    return message


def language_of(locale: str | None) -> str:
    """``locale`` (a Discord locale, a language code) → one of :data:`LANGUAGES`, or :data:`ENGLISH`."""
    if not locale:
        return ENGLISH
    if locale in LANGUAGES:
        return locale
    base = locale.replace("_", "-").split("-", 1)[0].lower()
    for language in LANGUAGES:
        if language.split("-", 1)[0].lower() == base:
            return language
    return ENGLISH


def babel_locale(language: str) -> Locale:
    """The CLDR locale of a language, for numbers, lists and dates."""
    return Locale.parse(LANGUAGES.get(language, ENGLISH))


def catalogue_path(language: str) -> Path:
    return LOCALES_DIR / LANGUAGES[language] / "LC_MESSAGES" / f"{DOMAIN}.po"


@dataclass(frozen=True)
class _Loaded:
    translations: gettext.NullTranslations
    #: ``(context, message id)`` of every entry with a translation (fuzzy ones do not count).
    translated: frozenset[tuple[str | None, str]]


@cache
def _load(language: str) -> _Loaded:
    """The language's catalogue, read once (English: none, ids are returned as they are)."""
    if language not in LANGUAGES:
        return _Loaded(gettext.NullTranslations(), frozenset())
    with catalogue_path(language).open("rb") as po:
        catalog = read_po(po, locale=LANGUAGES[language], domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    translated = frozenset(
        (m.context, m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and not m.fuzzy and (m.string if isinstance(m.string, str) else m.string and all(m.string))
    )
    return _Loaded(gettext.GNUTranslations(compiled), translated)


def _translations(language: str) -> gettext.NullTranslations:
    return _load(language).translations


def _fill(template: str, language: str, params: Mapping[str, object]) -> str:
    """Put the parameters into a translated template; numbers in the language's own format (1,234 / 1.234)."""
    if not params:
        return template
    values = {
        key: format_decimal(value, locale=babel_locale(language))
        if isinstance(value, int | float) and not isinstance(value, bool)
        else value
        for key, value in params.items()
    }
    return template.format(**values)


def translate(language: str, message: str, /, **params: object) -> str:
    """``message`` (English, with ``{name}`` placeholders) in ``language``, the placeholders filled in."""
    return _fill(_translations(language_of(language)).gettext(message), language_of(language), params)


def translate_plural(language: str, singular: str, plural: str, count: int, /, **params: object) -> str:
    """The form of ``singular``/``plural`` for ``count`` in ``language`` (``{count}`` is filled in too)."""
    language = language_of(language)
    return _fill(_translations(language).ngettext(singular, plural, count), language, {"count": count, **params})


def surface_text(language: str, context: str, message: str) -> str | None:
    """A command name, description or choice in ``language``, or None when the catalogue has none (Discord
    then shows the English one)."""
    language = language_of(language)
    if language == ENGLISH:
        return None
    loaded = _load(language)
    if (context, message) not in loaded.translated:
        return None
    return loaded.translations.pgettext(context, message)


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields of a template (what a translation must keep)."""
    return {name for _, name, _, _ in _FIELDS.parse(template) if name is not None}


@dataclass(frozen=True)
class Text:
    """A message to render later, in the language of whoever reads it (an error raised deep in a service is
    worded when the reply is sent)."""

    message: str
    params: Mapping[str, object] = field(default_factory=dict)

    def render(self, language: str) -> str:
        return translate(language, self.message, **self.params)

    def __str__(self) -> str:
        return self.render(ENGLISH)
