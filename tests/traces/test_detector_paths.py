"""The detectors' shortcuts give what the long way gives: names compared on the casefolded
text against the character-by-character comparison, the odd-whitespace test against its
pattern, the Luhn check against `stdnum.luhn`, the card numbers found (whole run first,
groups as slices of its digits) against their definition, and the emails found (each `@`
once) against the email pattern's matches."""

from __future__ import annotations

import random
import re
import sys

from stdnum import luhn

from evalkeeper.traces.detectors import (
    CARD_RUN_RE,
    EMAIL_RE,
    _is_card,
    _luhn_valid,
    find_cards,
    find_emails,
)
from evalkeeper.traces.names import _ODD_SPACE_RE, NameIndex, _odd_space

NAMES = ["Ada Lovelace", "Ann", "Ruth Weiß", "ss Ada", "İlker Ak", "'t Hooft", "Ann-Marie Lee"]
# Letters that casefold to two (ß, İ), the one non-word character that folds to a word
# character (U+0345), whitespace other than one space.
ALPHABET = [*"adaAnNlovcesu  .,'-", "Lovelace", "Ada", "Ann", "ß", "İ", "\u0345", "\t", "  "]


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 16))) for _ in range(n)]


def test_names_on_the_casefolded_text_match_the_character_comparison() -> None:
    """A trailing newline sends a text down the character-by-character path (its whitespace is
    no longer single spaces) without changing which names it holds."""
    index = NameIndex(NAMES)
    texts = _random_texts(20000, 7)
    texts += ["ADA LOVELACE met Ann; the Annual report", "ada lovelace", "Ann-Marie Lee."]
    found = 0
    for text in texts:
        hits = index.find(text)
        assert hits == index.find(text + "\n"), text
        found += len(hits)
    assert found > 1000


def test_the_casefolded_word_starts_are_the_words_starts() -> None:
    index = NameIndex(NAMES)
    for text in _random_texts(5000, 11):
        folded = text.casefold()
        if len(folded) == len(text) and "\u0345" not in text:
            assert index._starts_folded(folded) == index._starts(text), text


def test_luhn_agrees_with_stdnum() -> None:
    rng = random.Random(5)
    numbers = ["4111111111111111", "4111111111111112", "", "79927398713", "٤١١١", "4²11"]
    numbers += [
        "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 19))) for _ in range(50000)
    ]
    assert [_luhn_valid(n) for n in numbers] == [luhn.is_valid(n) for n in numbers]
    assert sum(map(_luhn_valid, numbers)) > 4000


def _cards_by_definition(text: str) -> list[tuple[int, int, str]]:
    """Each digit run: the whole run if it is a card, else its contiguous groups, longest
    first from each group on, each tried by joining its groups' digits."""
    found = []
    for m in CARD_RUN_RE.finditer(text):
        groups = [(m.start() + g.start(), m.start() + g.end()) for g in re.finditer(r"\d+", m[0])]
        i = 0
        while i < len(groups):
            for j in range(len(groups), i, -1):
                digits = "".join(text[s:e] for s, e in groups[i:j])
                if _is_card(digits):
                    found.append((groups[i][0], groups[j - 1][1], digits))
                    i = j
                    break
            else:
                i += 1
    return found


def test_cards_are_the_cards_of_their_definition() -> None:
    rng = random.Random(9)
    pieces = ["4111", "1111", "5500", "0000", "0004", "1800", "3", "٣", " ", "-", "  ", ".", "x"]
    pieces += ["4111 1111 1111 1111", "2027", "6011000990139424", "1700000000000"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(20000)]
    found = 0
    for text in texts:
        want = _cards_by_definition(text)
        assert [(h.start, h.end, h.value) for h in find_cards(text)] == want, text
        found += len(want)
    assert found > 2000


def test_emails_are_the_matches_of_the_email_pattern() -> None:
    # `find_emails` tries each `@` once, from the start of its local part
    rng = random.Random(13)
    pieces = ["ann", "@", "x.org", ".", "-", "+", "%", "_", " ", "é", "٣", "@@", "a@b.co", "1"]
    pieces += ["jane.doe@example.com", "Ü", ",", "(", "org", "co"]
    found = 0
    for _ in range(30000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        want = [(m.start(), m.end(), m[0].lower()) for m in EMAIL_RE.finditer(text)]
        assert [(h.start, h.end, h.value) for h in find_emails(text)] == want, text
        found += len(want)
    assert found > 5000


def test_odd_space_is_its_pattern_for_every_character() -> None:
    # `_odd_space` reads `isprintable` first: every whitespace but " " must be unprintable
    for i in range(sys.maxunicode + 1):
        text = f"a {chr(i)}b"
        assert _odd_space(text) == (_ODD_SPACE_RE.search(text) is not None), hex(i)
    assert _odd_space("a  b") and not _odd_space("a b") and _odd_space("a\u3000b")
