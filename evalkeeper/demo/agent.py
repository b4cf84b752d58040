"""A deterministic, rule-based appointment-scheduling agent, for demos and tests.

Harbour Clinic's chat assistant, in two releases, to run against the bundled
`data/datasets/appointments.jsonl`:

- `v1` ("appointments-agent 1.4.0"): keyword and regex rules pick the intent from the last user
  message (and earlier turns when the last one only carries a date, a time or a number), pull
  out dates, times, services and appointment ids, and answer from the retrieved `context`
  passages. It misses a few phrasings ("half past three", "after work"), as real rules do.
- `v2` ("appointments-agent 1.5.0"): v1 after a "refactor" of the cancellation handler into a
  shared appointment-change handler. Two regressions ship with it: a cancellation that mentions
  a date is treated as a move to that date (`reschedule_appointment` instead of
  `cancel_appointment`), and the notice window is now a constant of 48 hours instead of the
  one in the policy passage (24 hours). v2 is also slow on about 8% of conversations (a cold
  cache on the new handler's lookup, 1.3-1.6 s). Every other intent behaves exactly like v1.

No LLM, no network, standard library only. Latency is simulated with `asyncio.sleep`, derived
from a hash of the conversation, so every run sleeps the same on the same example.

Both entry points take the example's `inputs` (`messages`, `customer_id`, `context`) and
return `{"reply": str, "tool_calls": [{"name": str, "args": dict}]}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["respond", "v1", "v2"]

YEAR = 2026
DEFAULT_MONTH = 12
DEFAULT_NOTICE_HOURS = 24
DEFAULT_LATE_FEE = "25 EUR"
V2_NOTICE_HOURS = 48  # the v2 "refactor": a constant instead of the policy passage

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTHS = {name[:3].lower(): i + 1 for i, name in enumerate(MONTH_NAMES)}
_MONTH_RE = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_WEEKDAY_RE = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"

_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(20\d\d)-(\d{2})-(\d{2})\b"), "iso"),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b"), "dmy"),
    (re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH_RE}", re.I), "day_month"),
    (re.compile(rf"\b{_MONTH_RE}\s*(\d{{1,2}}){_ORD}\b", re.I), "month_day"),
    (re.compile(rf"\b{_WEEKDAY_RE}\s+(?:the\s+)?(\d{{1,2}}){_ORD}\b(?![:.]\d)", re.I), "day"),
    (re.compile(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b", re.I), "day"),
)
_TIME_24 = re.compile(r"\b([01]?\d|2[0-3])[:.]([0-5]\d)\s*(am|pm|a\.m\.|p\.m\.)?", re.I)
_TIME_12 = re.compile(r"\b(1[0-2]|0?[1-9])\s*(am|pm|a\.m\.|p\.m\.)", re.I)
_NOON = re.compile(r"\b(noon|midday)\b", re.I)
_TIME_OF_DAY = re.compile(r"\b(morning|afternoon|evening)s?\b", re.I)
_APPOINTMENT_ID = re.compile(r"\bA-\d{3,6}\b", re.I)

SERVICES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("massage", re.compile(r"\b(?:sports\s+)?massages?\b", re.I)),
    ("physiotherapy", re.compile(r"\bphysio\w*", re.I)),
    ("hygienist", re.compile(r"\bhygienist\b|\bcleaning\b|\bscale and polish\b", re.I)),
    ("eye test", re.compile(r"\beye\s+(?:test|exam)\w*|\boptician\b", re.I)),
    ("dental check-up", re.compile(r"\bcheck[- ]?ups?\b|\bdent(?:al|ist)\b", re.I)),
    ("consultation", re.compile(r"\bgp\b|\bdoctor\b|\bconsultation\b", re.I)),
)
SERVICE_LABELS = {
    "massage": "a sports massage",
    "physiotherapy": "physiotherapy",
    "hygienist": "a hygienist appointment",
    "eye test": "an eye test",
    "dental check-up": "a dental check-up",
    "consultation": "a GP consultation",
}

# -- intent rules ---------------------------------------------------------------------------

_ESCALATION: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "medical",
        re.compile(
            r"\b(chest pain|pain(?:ful)?|bleed\w*|swollen|swelling|dizz\w*|fever|allerg\w*"
            r"|symptoms?|medication|infect\w*|emergency|can'?t breathe)\b"
        ),
    ),
    (
        "legal",
        re.compile(
            r"\b(solicitor|lawyer|legal|sue|suing|gdpr|data protection|my data|data you hold"
            r"|court)\b"
        ),
    ),
    (
        "billing",
        re.compile(
            r"\b(refund\w*|invoice\w*|receipts?|overcharg\w*|billing|bills?|charged (?:me )?twice"
            r"|double[- ]charged|charge on my (?:card|account|statement)|twice for"
            r"|(?:took|taken|charged|paid) (?:the |my |a )?(?:deposit|payment|fee) twice)\b"
        ),
    ),
    (
        "complaint",
        re.compile(
            r"\b(complain\w*|complaint|rude|unacceptable|terrible|disgrace\w*|appalling"
            r"|nobody listened)\b"
        ),
    ),
    (
        "other",
        re.compile(
            r"\b((?:speak|talk) to (?:a |an |the )?(?:real )?(?:human|person|someone|somebody"
            r"|manager|staff member)|real person|not a bot|a manager)\b"
        ),
    ),
)
_RESCHEDULE = re.compile(
    r"\b(reschedul\w*|move (?:my|it|the|this|that|a-\d+)|push (?:my|it|the|this)\b.*\bback"
    r"|bring (?:my|it|the)\b.*\bforward|change (?:my|it|the|a-\d+)\b.*\bto\b"
    r"|different (?:day|date|time))"
)
_ACTION_PREFIX = (
    r"(?:please|pls|plz|can you|could you|need to|want to|have to|would like to|like to|must"
    r"|i'?ll have to|i'?d like to)\s+"
)
_RESCHEDULE_ACTION = re.compile(rf"\b{_ACTION_PREFIX}reschedul")
_CANCEL_WORD = re.compile(r"\bcanc(?:el|le)\w*")
_CANCEL_NEGATED = re.compile(r"\b(?:don'?t|do not|not)\s+canc(?:el|le)\w*")
_CANCEL_ACTION = re.compile(
    rf"\b{_ACTION_PREFIX}canc(?:el|le)\w*"
    r"|\bcanc(?:el|le)\w*\s+(?:my|it|the|this|that|both|appointment|a-\d)"
    r"|\bcan'?t make it|\bwon'?t be able to make|\bnot able to make"
)
_BOOK_NEGATED = re.compile(r"\b(?:don'?t|do not|not)\s+book\w*(?:\s+(?:it|anything))?(?:\s+yet)?")
_BOOKING = re.compile(
    r"\b(book|booking|reserve|make an appointment|get me in|put me down|i'?ll take"
    r"|i will take|sign me up)\b"
)
_AVAILABILITY = re.compile(
    r"\b(availab\w*|free slots?|any (?:free )?slots?|slots?|openings|anything (?:open|free"
    r"|available|on)|any(?:thing)? free|what'?s free|what times|do (?:you|u) have|have you got"
    r"|any chance|is .{0,40}\bfree\b|can i come in|next free|just checking|look at)"
)
_THANKS = re.compile(r"\b(thanks|thank you|thx|cheers|ta|brilliant|perfect|great)\b")
_BYE = re.compile(r"\b(bye|goodbye|see ya)\b")
_HOW_ARE_YOU = re.compile(r"\bhow are you\b")
_GREETING = re.compile(
    r"\b(hi|hello|hey|hiya|good (?:morning|afternoon|evening)|help|what can you do)\b"
)
_BOT = re.compile(
    r"\b(robot|a bot|are you (?:a )?(?:human|real|an? ai)|who (?:made|built|are) you"
    r"|what are you)\b"
)
_LANGUAGE = re.compile(
    r"\b(speak|talk|chat|write)\b.*\b(irish|gaelic|french|german|spanish|polish|italian"
    r"|portuguese|other languages?)\b|\blanguages?\b"
)
_PRICE = re.compile(r"\b(cost|costs|price|prices|how much (?:is|does|are|for))\b")
_LATE = re.compile(
    r"\b(today|this (?:morning|afternoon|evening)|tonight|in (\d+) hours?|in an hour)\b"
)

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "i'm",
        "im",
        "my",
        "me",
        "you",
        "your",
        "yours",
        "is",
        "are",
        "was",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "should",
        "what",
        "whats",
        "how",
        "if",
        "it",
        "its",
        "to",
        "of",
        "for",
        "on",
        "in",
        "at",
        "with",
        "and",
        "or",
        "be",
        "there",
        "this",
        "that",
        "any",
        "we",
        "our",
        "us",
        "have",
        "has",
        "get",
        "will",
        "need",
        "give",
        "before",
        "after",
        "much",
        "so",
        "not",
        "no",
        "yes",
        "please",
        "just",
        "about",
        "from",
        "by",
        "as",
        "up",
        "when",
        "where",
        "which",
        "who",
        "why",
        "clinic",
        "appointment",
        "appointments",
        "here",
        "her",
        "his",
        "their",
        "they",
        "them",
        "she",
        "he",
        "one",
        "also",
        "than",
        "then",
        "want",
        "like",
    ]
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ed", "es", "s")


# -- parsing --------------------------------------------------------------------------------


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_dates(text: str) -> list[date]:
    """Every date mentioned in `text`, in order of appearance (December 2026 by default)."""
    found: list[tuple[int, date]] = []
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            d: date | None
            if kind == "iso":
                d = _valid_date(int(m[1]), int(m[2]), int(m[3]))
            elif kind == "dmy":
                year = int(m[3]) if m[3] else YEAR
                d = _valid_date(year + 2000 if year < 100 else year, int(m[2]), int(m[1]))
            elif kind == "day_month":
                d = _valid_date(YEAR, _MONTHS[m[2][:3].lower()], int(m[1]))
            elif kind == "month_day":
                d = _valid_date(YEAR, _MONTHS[m[1][:3].lower()], int(m[2]))
            else:
                d = _valid_date(YEAR, DEFAULT_MONTH, int(m[1]))
            if d is not None:
                found.append((m.start(), d))
    found.sort(key=lambda item: item[0])
    out: list[date] = []
    for _, d in found:
        if d not in out:
            out.append(d)
    return out


def _strip_dates(text: str) -> str:
    for pattern, kind in _DATE_PATTERNS:
        if kind in ("iso", "dmy"):
            text = pattern.sub(" ", text)
    return text


def find_time(text: str) -> str | None:
    """The first clock time in `text` as "HH:MM" (24-hour), or None."""
    text = _strip_dates(text)
    candidates: list[tuple[int, str]] = []
    for m in _TIME_24.finditer(text):
        hour, minute = int(m[1]), int(m[2])
        suffix = (m[3] or "").lower().replace(".", "")
        if suffix == "pm" and hour < 12:
            hour += 12
        elif suffix == "am" and hour == 12:
            hour = 0
        candidates.append((m.start(), f"{hour:02d}:{minute:02d}"))
    for m in _TIME_12.finditer(text):
        hour = int(m[1]) % 12
        if m[2].lower().startswith("p"):
            hour += 12
        candidates.append((m.start(), f"{hour:02d}:00"))
    for m in _NOON.finditer(text):
        candidates.append((m.start(), "12:00"))
    return min(candidates)[1] if candidates else None


def find_service(text: str) -> str | None:
    for name, pattern in SERVICES:
        if pattern.search(text):
            return name
    return None


def find_time_of_day(text: str) -> str | None:
    m = _TIME_OF_DAY.search(text)
    return m[1].lower() if m else None


def find_appointment_ids(text: str) -> list[str]:
    out: list[str] = []
    for m in _APPOINTMENT_ID.finditer(text):
        ident = m[0].upper()
        if ident not in out:
            out.append(ident)
    return out


def format_date(d: date) -> str:
    return f"{WEEKDAYS[d.weekday()]} {d.day} {MONTH_NAMES[d.month - 1]}"


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:5]


def _terms(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {_stem(w.strip("'")) for w in words if w not in _STOPWORDS and len(w.strip("'")) > 2}


# -- the conversation -----------------------------------------------------------------------


def _newest(texts: list[str], find: Callable[[str], T | None]) -> T | None:
    """What `find` finds in the newest text that has it (texts are newest first)."""
    for text in texts:
        found = find(text)
        if found:
            return found
    return None


@dataclass
class Turns:
    """The conversation, newest turn first, with the helpers the handlers share."""

    messages: list[dict[str, str]]
    customer_id: str | None
    context: list[dict[str, str]]
    user: list[str] = field(init=False)
    every: list[str] = field(init=False)

    def __post_init__(self) -> None:
        texts = [(m.get("role", "user"), str(m.get("content", ""))) for m in self.messages]
        self.user = [c for r, c in reversed(texts) if r == "user"]
        self.every = [c for _, c in reversed(texts)]

    @property
    def last(self) -> str:
        return self.user[0] if self.user else ""

    def newest_date(self) -> date | None:
        """The newest date mentioned in the conversation (user or assistant turns)."""
        dates = _newest(self.every, find_dates)
        return dates[0] if dates else None

    def time(self) -> str | None:
        """The newest time the user gave (times the assistant offered don't count)."""
        return _newest(self.user, find_time)

    def service(self) -> str | None:
        return _newest(self.every, find_service)

    def time_of_day(self) -> str | None:
        return find_time_of_day(self.last)

    def passage(self, *needles: str) -> str | None:
        """The first context passage containing every needle (case-insensitive)."""
        for p in self.context:
            text = str(p.get("text", ""))
            if all(n.lower() in text.lower() for n in needles):
                return text
        return None

    def notice_hours(self) -> int:
        text = self.passage("cancel", "hours")
        m = re.search(r"(\d+)\s+hours", text or "")
        return int(m[1]) if m else DEFAULT_NOTICE_HOURS

    def late_fee(self) -> str:
        text = self.passage("fee")
        m = re.search(r"(\d+(?:[.,]\d+)?\s*(?:EUR|€|euro))", text or "", re.I)
        return m[1] if m else DEFAULT_LATE_FEE


def _escalation_reason(text: str) -> str | None:
    low = text.lower()
    for reason, pattern in _ESCALATION:
        if pattern.search(low):
            return reason
    return None


def keyword_intent(text: str) -> str | None:
    """The intent the words of one message ask for, or None when they only carry data."""
    low = text.lower()
    if _escalation_reason(low):
        return "escalation"
    has_id = bool(_APPOINTMENT_ID.search(text))
    if _RESCHEDULE.search(low) and (has_id or _RESCHEDULE_ACTION.search(low)):
        return "reschedule"
    unnegated = _CANCEL_NEGATED.sub(" ", low)
    if _CANCEL_WORD.search(unnegated) and (has_id or _CANCEL_ACTION.search(unnegated)):
        return "cancel"
    if _BOOKING.search(_BOOK_NEGATED.sub(" ", low)):
        return "booking"
    has_data = bool(find_dates(text) or find_service(text) or find_time_of_day(text))
    if _AVAILABILITY.search(low) and has_data:
        return "availability"
    if _THANKS.search(low) or _BYE.search(low) or _HOW_ARE_YOU.search(low):
        return "small_talk"
    if _BOT.search(low) or _LANGUAGE.search(low):
        return "small_talk"
    return None


def _has_data(text: str) -> bool:
    return bool(
        find_dates(text) or find_time(text) or find_appointment_ids(text) or find_service(text)
    )


def best_passage(question: str, context: list[dict[str, str]]) -> str | None:
    """The context passage sharing most terms with the question (first wins a tie)."""
    terms = _terms(question)
    for name, pattern in SERVICES:
        if pattern.search(question):
            terms |= _terms(name)
    if _PRICE.search(question.lower()):
        terms.add("eur")
    best, best_score = None, 0
    for p in context:
        text = str(p.get("text", ""))
        score = len(terms & _terms(text))
        if score > best_score:
            best, best_score = text, score
    return best


def route(turns: Turns) -> str:
    last = turns.last
    intent = keyword_intent(last)
    if intent is None and _has_data(last):
        # "14:30 please", "Tuesday 29 December at 10:00": carry on the earlier request.
        for earlier in turns.user[1:]:
            previous = keyword_intent(earlier)
            if previous in ("booking", "reschedule", "cancel"):
                intent = previous
                break
            if previous == "availability":
                intent = "booking" if find_time(last) else "availability"
                break
        if intent is None and find_dates(last):
            intent = "availability"
    if intent is None and best_passage(last, turns.context):
        intent = "policy"
    return intent or "small_talk"


# -- handlers -------------------------------------------------------------------------------

Result = tuple[str, list[dict[str, Any]]]


def _closed(d: date, turns: Turns) -> str:
    hours = turns.passage("open", "sunday")
    reply = f"Sorry, we're closed on Sundays, so there's nothing on {format_date(d)}."
    return f"{reply} {hours}" if hours else reply


def handle_availability(turns: Turns) -> Result:
    d = turns.newest_date()
    service = turns.service()
    if d is None:
        what = f" for {SERVICE_LABELS[service]}" if service else ""
        return f"Which day would you like me to check{what}?", []
    if d.weekday() == 6:
        return _closed(d, turns), []
    args: dict[str, Any] = {"date": d.isoformat()}
    if service:
        args["service"] = service
    tod = turns.time_of_day()
    if tod:
        args["time_of_day"] = tod
    reply = f"Let me check {service + ' ' if service else ''}availability for {format_date(d)}"
    reply += f" in the {tod}." if tod else "."
    return reply, [{"name": "check_availability", "args": args}]


def handle_booking(turns: Turns) -> Result:
    d, t, service = turns.newest_date(), turns.time(), turns.service()
    missing = [
        label
        for label, value in (("which day", d), ("what time", t), ("which service", service))
        if value is None
    ]
    if missing:
        what = f" {SERVICE_LABELS[service]}" if service else " that"
        ask = " and ".join(missing)
        ask = "which day and time" if ask == "which day and what time" else ask
        return f"I can book{what} for you — {ask} would suit you?", []
    assert d is not None and t is not None and service is not None
    if d.weekday() == 6:
        return _closed(d, turns), []
    args = {"date": d.isoformat(), "time": t, "service": service}
    args["customer_id"] = turns.customer_id or ""
    reply = f"You're booked in for {SERVICE_LABELS[service]} on {format_date(d)} at {t}."
    label = "sports massage" if service == "massage" else service
    deposit = turns.passage("deposit", label)
    if deposit:
        m = re.search(r"deposit of ([\d.,]+\s*EUR)", deposit)
        if m:
            reply += f" A deposit of {m[1]} is due when booking."
    if turns.passage("cancel", "hours"):
        reply += f" If you need to cancel, it's free up to {turns.notice_hours()} hours before."
    return reply, [{"name": "book_appointment", "args": args}]


def handle_reschedule(turns: Turns) -> Result:
    ids: list[str] = []
    for text in turns.user:
        ids = find_appointment_ids(text)
        if ids:
            break
    d, t = find_dates(turns.last), find_time(turns.last)
    if not ids:
        return (
            "I can move that for you. Could you tell me the appointment number? It starts "
            'with "A-" and is in your confirmation email.',
            [],
        )
    if not d or t is None:
        return "No problem. What date and time would you like instead?", []
    if d[0].weekday() == 6:
        return _closed(d[0], turns), []
    args = {"appointment_id": ids[0], "date": d[0].isoformat(), "time": t}
    reply = f"Done — appointment {ids[0]} is now on {format_date(d[0])} at {t}."
    policy = turns.passage("reschedul")
    if policy:
        m = re.search(r"at least (\d+ hours'? notice)", policy)
        if m:
            reply += f" Rescheduling is free with at least {m[1]}."
    return reply, [{"name": "reschedule_appointment", "args": args}]


def _ids_to_cancel(turns: Turns) -> list[str]:
    ids = find_appointment_ids(turns.last)
    if ids:
        return ids
    service = find_service(turns.last)
    for text in turns.every[1:]:
        ids = find_appointment_ids(text)
        if len(ids) <= 1 or service is None:
            if ids:
                return ids[:1]
            continue
        # "Cancel the dental one": pick the id whose stretch of text names that service.
        start = 0
        for m in _APPOINTMENT_ID.finditer(text):
            if find_service(text[start : m.end()]) == service:
                return [m[0].upper()]
            start = m.end()
        return []
    return []


def _is_late(text: str, notice_hours: int) -> bool:
    m = _LATE.search(text.lower())
    if not m:
        return False
    hours = int(m[2]) if m[2] else 1
    return hours < notice_hours


def _join(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else ", ".join(ids[:-1]) + " and " + ids[-1]


def handle_cancel(turns: Turns) -> Result:
    return _cancel(turns, _ids_to_cancel(turns), turns.notice_hours())


def _cancel(turns: Turns, ids: list[str], hours: int) -> Result:
    """Cancel `ids` (or ask which appointment), quoting a `hours` notice window."""
    policy = f"cancellations are free of charge up to {hours} hours before the appointment."
    if not ids:
        return (
            "I can cancel that for you. Could you tell me the appointment number? It starts "
            f'with "A-" and is in your confirmation email. {policy[0].upper()}{policy[1:]}',
            [],
        )
    noun = "appointment" if len(ids) == 1 else "appointments"
    reply = f"I've cancelled {noun} {_join(ids)}."
    if _is_late(turns.last, hours):
        reply += (
            f" As it's less than {hours} hours before your appointment, the late-cancellation "
            f"fee of {turns.late_fee()} applies."
        )
    else:
        reply += f" There's no charge, as {policy}"
    calls = [{"name": "cancel_appointment", "args": {"appointment_id": i}} for i in ids]
    return reply, calls


def handle_cancel_v2(turns: Turns) -> Result:
    """v2's merged "appointment change" handler (the regression).

    A date anywhere in the conversation is taken as the new date, so a cancellation that says
    *which* appointment ("my physio on Thursday 3 December") becomes a move; and the notice
    window is the constant V2_NOTICE_HOURS rather than the policy passage's.
    """
    hours = V2_NOTICE_HOURS
    ids = _ids_to_cancel(turns)
    d = turns.newest_date()
    if not ids or d is None:
        return _cancel(turns, ids, hours)
    args: dict[str, Any] = {"appointment_id": ids[0], "date": d.isoformat()}
    t = turns.time()
    if t:
        args["time"] = t
    reply = (
        f"I've moved appointment {ids[0]} to {format_date(d)}. Changes are free of charge "
        f"up to {hours} hours before the appointment."
    )
    return reply, [{"name": "reschedule_appointment", "args": args}]


_ESCALATION_REPLIES = {
    "billing": "I'm sorry for the trouble with your bill. I've passed this to {team}, who handle "
    "billing questions and reply within one working day.",
    "complaint": "I'm really sorry about your experience. I've passed your complaint to {team}, "
    "who reply within one working day.",
    "legal": "I've passed your request to {team}, who handle legal and data-protection requests "
    "and reply within one working day.",
    "other": "Of course — I'm passing you to a member of {team}, who will reply within one "
    "working day.",
}


def handle_escalation(turns: Turns) -> Result:
    reason = "other"
    for text in turns.user:
        found = _escalation_reason(text)
        if found:
            reason = found
            break
    call = [{"name": "escalate_to_human", "args": {"reason": reason}}]
    if reason == "medical":
        emergency = "112"
        m = re.search(r"call (\d{3})", turns.passage("urgent") or "")
        if m:
            emergency = m[1]
        return (
            "I can't give medical advice, so I've asked a clinician to call you back. If it's "
            f"urgent or you feel unwell, please call {emergency} now.",
            call,
        )
    team = "our patient care team" if turns.passage("patient care team") else "our team"
    return _ESCALATION_REPLIES[reason].format(team=team), call


def handle_policy(turns: Turns) -> Result:
    passage = best_passage(turns.last, turns.context)
    if passage is None:
        return (
            "I'm not sure about that one. I can pass your question to our patient care team, "
            "or help you with an appointment.",
            [],
        )
    return passage, []


def handle_small_talk(turns: Turns) -> Result:
    low = turns.last.lower()
    menu = (
        "I can check availability, book, reschedule or cancel appointments, and answer "
        "questions about our policies."
    )
    if _LANGUAGE.search(low):
        return (
            "I'm afraid I can only chat in English at the moment, but I'm happy to help with "
            "your appointments at Harbour Clinic.",
            [],
        )
    if _BOT.search(low):
        return (
            "I'm Harbour Clinic's virtual assistant. I can help with bookings, changes and "
            "questions about our policies, and pass you to the team when needed.",
            [],
        )
    if _THANKS.search(low):
        return "You're welcome — see you soon!", []
    if _BYE.search(low):
        return "Goodbye, and thanks for contacting Harbour Clinic!", []
    if _HOW_ARE_YOU.search(low):
        return "I'm doing well, thanks for asking! How can I help with your appointment today?", []
    m = _GREETING.search(low)
    if m:
        hello = m[1].capitalize() if m[1].startswith("good") else "Hello"
        if m[1] in ("help", "what can you do"):
            return f"Happy to help! {menu}", []
        return f"{hello}! {menu}", []
    return (
        "I'm afraid I can only help with appointments at Harbour Clinic — booking, "
        "availability, changes and our policies.",
        [],
    )


_HANDLERS = {
    "availability": handle_availability,
    "booking": handle_booking,
    "reschedule": handle_reschedule,
    "cancel": handle_cancel,
    "escalation": handle_escalation,
    "policy": handle_policy,
    "small_talk": handle_small_talk,
}


def _turns(inputs: dict[str, Any]) -> Turns:
    messages = inputs.get("messages") or []
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not messages and inputs.get("question"):
        messages = [{"role": "user", "content": str(inputs["question"])}]
    return Turns(
        messages=list(messages),
        customer_id=inputs.get("customer_id"),
        context=list(inputs.get("context") or []),
    )


def respond(inputs: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    """The agent's answer, synchronously and without the simulated latency."""
    turns = _turns(inputs)
    intent = route(turns)
    handler = _HANDLERS[intent]
    if version == "v2" and intent == "cancel":
        handler = handle_cancel_v2
    reply, calls = handler(turns)
    return {"reply": reply, "tool_calls": calls}


# -- latency and entry points ---------------------------------------------------------------


def _digest(inputs: dict[str, Any]) -> bytes:
    text = json.dumps(inputs.get("messages") or [], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


def latency_seconds(inputs: dict[str, Any], version: str = "v1") -> float:
    """The simulated latency for these inputs: the same every time for the same messages."""
    h = _digest(inputs)
    base = 0.020 + int.from_bytes(h[0:4], "big") % 231 / 1000  # 20-250 ms
    if version == "v2" and int.from_bytes(h[12:16], "big") % 25 < 2:  # 8% of conversations
        return 1.3 + int.from_bytes(h[16:20], "big") % 301 / 1000  # 1.3-1.6 s
    return base


async def v1(inputs: dict[str, Any]) -> dict[str, Any]:
    """appointments-agent 1.4.0: the good release."""
    await asyncio.sleep(latency_seconds(inputs, "v1"))
    return respond(inputs, "v1")


async def v2(inputs: dict[str, Any]) -> dict[str, Any]:
    """appointments-agent 1.5.0: v1 plus the cancellation regression and a slow path."""
    await asyncio.sleep(latency_seconds(inputs, "v2"))
    return respond(inputs, "v2")


v1.__evalkeeper_pin__ = {  # type: ignore[attr-defined]
    "agent_version": "appointments-agent 1.4.0",
    "model": "rules-2026-11-01",
}
v2.__evalkeeper_pin__ = {  # type: ignore[attr-defined]
    "agent_version": "appointments-agent 1.5.0",
    "model": "rules-2026-11-01",
}
