"""Tag schemes of token-classification data: detect IOB1 / BIO / IOBES / BILOU, convert to BIO.

Everything downstream (encoding, seqeval's IOB2 strict mode, span extraction) assumes BIO, so
conversion happens once, at load time, and the detected input scheme is reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

PREFIXES = frozenset("BIESLU")
# IOBES and BILOU name the same idea with different letters; both map onto BIO the same way.
_TO_BIO_PREFIX = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}


def split_tag(tag: str) -> tuple[str, str | None]:
    """Return (prefix, type) of a tag: ("O", None) or e.g. ("B", "PER").

    Raises:
        ValueError: the tag is neither "O" nor `<B|I|E|S|L|U>-<type>`.
    """
    if tag == "O":
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in PREFIXES:
        return tag[0], tag[2:]
    raise ValueError(f"tag {tag!r} is neither O nor B-/I-/E-/S-<type>")


@dataclass
class SchemeScan:
    """What `scan_scheme` found.

    Attributes:
        scheme: "IOBES", "BILOU", "IOB1" or "BIO".
        i_starts: entities that begin with I- (IOB1's normal case; ill-formed in BIO, where
            they are read as B-, as seqeval's default mode does).
    """

    scheme: str
    i_starts: int

    @property
    def needs_conversion(self) -> bool:
        return self.scheme != "BIO" or self.i_starts > 0


def scan_scheme(sequences: Iterable[list[str]]) -> SchemeScan:
    """Detect the scheme of valid tag sequences.

    IOBES when E-/S- occur, BILOU when L-/U- occur. Otherwise IOB1 if entities begin with I-
    more often than with B- after O/another type (IOB1 uses B- only between two adjacent
    entities of one type), else BIO. Counts tag bigrams in C (`Counter` over `zip`), so a
    million tokens take well under a second.
    """
    bigrams: Counter = Counter()
    for tags in sequences:
        bigrams.update(zip(["O", *tags], tags, strict=False))  # (previous, tag) pairs
    parsed = {tag: split_tag(tag) for pair in bigrams for tag in pair}
    prefixes = {prefix for prefix, _ in parsed.values()}
    i_starts = b_fresh = 0
    for (prev, tag), count in bigrams.items():
        prefix, kind = parsed[tag]
        if kind is not None and kind != parsed[prev][1]:
            if prefix == "I":
                i_starts += count
            elif prefix == "B":
                b_fresh += count
    if prefixes & {"E", "S"}:
        return SchemeScan("IOBES", i_starts)
    if prefixes & {"L", "U"}:
        return SchemeScan("BILOU", i_starts)
    return SchemeScan("IOB1" if i_starts > b_fresh else "BIO", i_starts)


def to_bio(tags: list[str]) -> list[str]:
    """Convert one tag sequence of any supported scheme to BIO (IOB2).

    S-/U- become B-, E-/L- become I-, and an I- tag that cannot continue the previous tag
    (IOB1's chunk start) becomes B-, so the result is always valid BIO and keeps the spans
    seqeval's default mode reads from the input.
    """
    out: list[str] = []
    prev_type: str | None = None
    for tag in tags:
        prefix, kind = split_tag(tag)
        if kind is None:
            out.append("O")
        else:
            new = _TO_BIO_PREFIX[prefix]
            if new == "I" and kind != prev_type:
                new = "B"
            out.append(f"{new}-{kind}")
        prev_type = kind
    return out


def entity_types(sequences: Iterable[list[str]]) -> list[str]:
    """Entity types in order of first appearance (tags must be valid)."""
    seen: dict[str, None] = {}
    for tags in sequences:
        for tag in dict.fromkeys(tags):
            kind = split_tag(tag)[1]
            if kind is not None:
                seen.setdefault(kind, None)
    return list(seen)


def bio_labels(types: Iterable[str]) -> list[str]:
    """The full BIO label list in id order: "O" first, then B-/I- of each type in order."""
    labels = ["O"]
    for kind in types:
        labels += [f"B-{kind}", f"I-{kind}"]
    return labels
