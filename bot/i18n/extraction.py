"""Building the catalogues' template: the messages of the code (found by Babel's extractor) and of the command
surface (collected from the registered commands by ``tests/unit/cogs/test_languages.py``).

The template (``bot/i18n/locales/speechbot.pot``) is what ``pybabel update`` merges into each language's
catalogue; docs/languages.md has the commands.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import write_po

from bot.i18n.catalogs import DOMAIN, LOCALES_DIR

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = LOCALES_DIR / f"{DOMAIN}.pot"
#: The functions whose string arguments are messages (Babel's keyword specs: argument positions, 1-based).
KEYWORDS: dict[str, tuple[int, ...]] = {
    "translate": (2,),
    "translate_plural": (2, 3),
    "tr": (2,),
    "tr_plural": (2, 3),
    "UserFacingError": (1,),
    "N_": (1,),
}
#: Comments starting with this, just above a message, reach the translators.
COMMENT_TAG = "TRANSLATORS:"
SOURCES = ("bot", "cogs")


def code_messages(root: Path = ROOT) -> Catalog:
    """Every message marked in ``bot/`` and ``cogs/`` (replies, errors, spoken phrases)."""
    catalog = Catalog(domain=DOMAIN)
    for folder in SOURCES:
        found = extract_from_dir(
            root / folder, method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=[COMMENT_TAG],
            strip_comment_tags=True,
        )
        for filename, lineno, message, comments, context in found:
            catalog.add(message, locations=[(f"{folder}/{filename}", lineno)], auto_comments=comments, context=context)
    return catalog


def template(surface: Iterable[tuple[str, str, str]], root: Path = ROOT) -> Catalog:
    """The whole template: the code's messages and the command surface's ``(context, message, where)``."""
    catalog = code_messages(root)
    for context, message, where in surface:
        existing = catalog.get(message, context=context)
        if existing is None:
            catalog.add(message, context=context, auto_comments=[where])
        elif where not in existing.auto_comments:
            existing.auto_comments.append(where)
    return catalog


def write_template(catalog: Catalog, path: Path = TEMPLATE) -> None:
    with path.open("wb") as out:
        write_po(out, catalog, omit_header=False, sort_output=False, width=120, no_location=False)
