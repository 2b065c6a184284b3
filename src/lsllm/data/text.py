"""Character-level checks shared by the readers and label collection (standard library only).

This is the lowest data module: it imports nothing from lsllm, so `readers`, `inputs`, `hub`
and `labels` can all use it without an import loop.
"""

from __future__ import annotations

import unicodedata

# Categories that never put ink on the page: controls (NUL, \x1c), format characters (U+200B,
# U+FEFF, bidi marks, tag characters), surrogates, space and line/paragraph separators, and
# combining marks, which only modify a base character (a text of lone marks shows nothing, or
# a dotted circle). Unassigned (Cn) and private-use (Co) code points count as visible: a newer
# emoji is Cn in an older Python, and private-use glyphs exist in real fonts.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols that are drawn as blanks (Hangul fillers, the blank Braille pattern).
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def visible(char: str) -> bool:
    """Whether one character is drawn as something (see INVISIBLE_CATEGORIES)."""
    return char not in BLANK_CHARACTERS and unicodedata.category(char) not in INVISIBLE_CATEGORIES


def has_visible_text(s: str) -> bool:
    """Whether `s` holds at least one visible character.

    "", whitespace, U+200B, U+FEFF, NUL and a lone combining mark have none: as training or
    prediction text they are empty. Fast for ordinary text: the first visible character ends
    the scan.
    """
    for c in s:
        if "!" <= c <= "~" or visible(c):  # printable ASCII first: ordinary text returns at once
            return True
    return False


def lone_surrogate(s: str) -> str | None:
    """The first unpaired surrogate in `s` (e.g. from the JSON escape "\\ud800"), else None.

    Such a string cannot be encoded as UTF-8, so a tokenizer fails on it with a TypeError.
    """
    if s.isascii():
        return None
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as err:
        return s[err.start]
    return None


def escaped(char: str) -> str:
    """A character as its escape, e.g. "\\ud800" or "\\u200b", for one-line messages."""
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def label_key(label: str) -> str:
    """What a label looks like on screen: NFC, any space as " ", without never-visible
    characters, case-folded.

    Two labels with the same key ("positive" and "Positive", "B-PER" and "B-PER\\u200b",
    "very negative" with a no-break space) differ only by case or by what nobody sees.
    Combining marks stay: they change the letter.
    """
    text = unicodedata.normalize("NFC", label)
    return "".join(" " if unicodedata.category(c) == "Zs" else c for c in text if not _never_visible(c)).casefold()


def invisible_characters(label: str) -> list[str]:
    """The never-visible characters of a label (format, control, line separators, blanks and
    spaces other than " "), in order, once each. A combining mark on a letter is not one."""
    found: list[str] = []
    for c in label:
        if c not in found and (_never_visible(c) or (c != " " and unicodedata.category(c) == "Zs")):
            found.append(c)
    return found


def _never_visible(char: str) -> bool:
    """Invisible whatever it follows: not a space, not a combining mark (those modify text)."""
    return char in BLANK_CHARACTERS or unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
