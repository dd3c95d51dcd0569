"""Free text people type that others read (names, reasons): one check for what it may hold."""

from __future__ import annotations

import unicodedata

# Zero-width non-joiner and joiner are format characters that some scripts (Persian, Indic) and
# emoji sequences need; every other format character is refused (see `character_problem`).
JOINERS = frozenset("\u200c\u200d")
# Invisible characters of other categories that only ever hide or pad a text: the combining
# grapheme joiner, the Hangul fillers and the Khmer inherent vowels.
INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
# Variation selectors choose how the character before them looks; after a symbol (an emoji
# in its text or picture form) that is their use, anywhere else they only hide in a text.
VARIATION_SELECTORS = frozenset(
    [
        *map(chr, range(0xFE00, 0xFE10)),
        *map(chr, range(0xE0100, 0xE01F0)),
        *"\u180b\u180c\u180d\u180f",  # Mongolian free variation selectors
    ]
)


def collapse_spaces(value: str) -> str:
    """Runs of white space (any Unicode space, tab or line break) as one space, trimmed."""
    return " ".join(value.split())


def _hidden(char: str, before: str) -> bool:
    """Bidi controls (U+202A to U+202E, U+2066 to U+2069, U+200E/F, U+061C), zero-width
    and other format characters (Cf) bar the two joiners, the invisible characters above, and
    variation selectors that do not follow a symbol."""
    if char in JOINERS:
        return False
    if char in VARIATION_SELECTORS:
        return unicodedata.category(before) not in ("So", "Sk") if before else True
    return unicodedata.category(char) == "Cf" or char in INVISIBLE


def character_problem(text: str, *, of: str = "the text") -> str | None:
    """Why `text` cannot be shown to others as it is, or None (`of` names it in the message).

    Control, surrogate, private-use and unassigned characters are refused, and so are
    characters that reorder or hide text: in a list they would make one text pass for another.
    """
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in text):
        return "Use letters, digits, spaces and punctuation only."
    hidden = next((c for i, c in enumerate(text) if _hidden(c, text[i - 1] if i else "")), None)
    if hidden is not None:
        return f"Remove the invisible or text-direction character U+{ord(hidden):04X} from {of}."
    return None


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """ "1 session", "3 sessions", "1,200 users": the number and the noun in agreement (also a
    Jinja filter: `{{ n|counted("day") }}`)."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
