"""Configured names, found as whole words, case-insensitively, among thousands of them."""

from __future__ import annotations

import re
from collections.abc import Iterable

from evalkeeper.traces.hits import Hit

_WORD_RE = re.compile(r"\w+")


class NameIndex:
    """Configured names, found as whole words, case-insensitively, any whitespace between
    their words. A text is first checked for any name's first word (a set lookup), and only
    the names starting with a word it holds are searched: thousands of names cost what a
    handful do."""

    def __init__(self, names: Iterable[str]) -> None:
        self._by_first: dict[str, list[str]] = {}
        self._written: dict[str, set[str]] = {}  # casefolded name -> the spellings given
        self._compiled: dict[str, re.Pattern[str]] = {}
        for written in {" ".join(n.split()) for n in names if n.strip()}:
            name = written.casefold()
            words = _WORD_RE.findall(name)
            if not words:
                continue
            if name not in self._written:
                self._by_first.setdefault(words[0], []).append(name)
            self._written.setdefault(name, set()).add(written)
        self._firsts = frozenset(self._by_first)

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def _pattern(self, name: str) -> re.Pattern[str]:
        rx = self._compiled.get(name)
        if rx is None:  # each spelling as given (`Weiß` casefolds to `weiss`), any case
            bodies = {
                r"\s+".join(re.escape(w) for w in written.split(" "))
                for written in self._written[name]
            }
            alternatives = "|".join(sorted(bodies))
            rx = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
            self._compiled[name] = rx
        return rx

    def find(self, text: str) -> list[Hit]:
        """The names in `text`; the value is the name casefolded, spaces collapsed.

        Each word of the text that starts some name is compared with those names character
        by character, casefolded (no regular expression per name: compiling thousands of
        them was a fifth of the redaction time). A name that does not start with a word
        (`'t Hooft`) is searched with its pattern.

        When casefolding keeps every character one character long and every whitespace in
        the text is a single space (nearly every text), that comparison is a `startswith`
        on the casefolded text at the word's offset: the same answer, without the loop."""
        folded = text.casefold()
        simple = len(folded) == len(text) and "\u0345" not in text and not _odd_space(text)
        starts = self._starts_folded(folded) if simple else self._starts(text)
        hits: list[Hit] = []
        for first, positions in starts.items():
            for name in self._by_first[first]:
                if not name.startswith(first):
                    hits.extend(
                        Hit(m.start(), m.end(), "NAME", name)
                        for m in self._pattern(name).finditer(text)
                    )
                    continue
                for pos in positions:
                    if simple:
                        end = pos + len(name)
                        if not folded.startswith(name, pos) or _W_RE.match(text, end):
                            continue
                    else:
                        found = _match_name(text, pos, name)
                        if found is None:
                            continue
                        end = found
                    hits.append(Hit(pos, end, "NAME", name))
        return hits

    def _starts(self, text: str) -> dict[str, list[int]]:
        """Where each word of `text` that starts a name begins, by that word casefolded."""
        starts: dict[str, list[int]] = {}
        for m in _WORD_RE.finditer(text):
            word = m.group().casefold()
            if word in self._firsts:
                starts.setdefault(word, []).append(m.start())
        return starts

    def _starts_folded(self, folded: str) -> dict[str, list[int]]:
        """`_starts` of a text from its casefolded form, when casefolding kept every
        character one character long (U+0345 aside, the only character that is no word
        character but folds to one, the words are then where they were)."""
        present = self._firsts.intersection(_WORD_RE.findall(folded))
        if not present:
            return {}
        found: list[tuple[int, str, list[int]]] = []
        for word in present:
            positions = []
            size = len(word)
            i = folded.find(word)
            while i >= 0:
                if not (i and _W_RE.match(folded, i - 1)) and not _W_RE.match(folded, i + size):
                    positions.append(i)
                i = folded.find(word, i + 1)
            found.append((positions[0], word, positions))
        found.sort()  # first words in the order the text holds them, as `_starts` gives
        return {word: positions for _, word, positions in found}


# Whitespace other than a single space: a name's space may stand for a run of it.
_ODD_SPACE_RE = re.compile(r"[^\S ]|  ")


def _odd_space(text: str) -> bool:
    """Whether `text` holds `_ODD_SPACE_RE`. Every whitespace character but the space is
    unprintable (a control or a separator), so a printable text without two spaces in a
    row has none, and `isprintable` (no regular expression) tells most texts apart."""
    if "  " in text:
        return True
    return not text.isprintable() and _ODD_SPACE_RE.search(text) is not None


_W_RE = re.compile(r"\w")


def _match_name(text: str, pos: int, name: str) -> int | None:
    """The end of `name` (casefolded, single spaces) in `text` from `pos`, compared
    casefolded, any run of whitespace for a space, ending at a word boundary; else None."""
    i, j, n, m = pos, 0, len(text), len(name)
    while j < m:
        if i >= n:
            return None
        c = text[i]
        if name[j] == " ":
            if not c.isspace():
                return None
            while i < n and text[i].isspace():
                i += 1
            j += 1
            continue
        folded = c if c.isascii() and c.islower() else c.casefold()
        if not name.startswith(folded, j):
            return None
        j += len(folded)
        i += 1
    return None if i < n and _W_RE.match(text, i) else i
