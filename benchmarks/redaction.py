"""PII redaction: recall per kind, preservation of look-alike values, and throughput.

    uv run python benchmarks/redaction.py [--messages-per-locale 300] [--seed 20261130]

A seeded Faker corpus in thirteen locales: messages holding names, phone numbers (Faker's
national `phone_number` and our own formatting of the same numbers in E.164 and
international layouts), emails, card numbers and IBANs, mixed with values that must survive:
dates, times, prices, order and appointment ids, years, small numbers, ISO timestamps.
In the locales of scripts written without spaces between words (ja_JP, zh_CN, th_TH; and
ko_KR, whose particles are glued to the word before), the messages are written in that
language, the phone numbers glued to the words and CJK punctuation around them (`電話番号は
090-2867-8126です。`), a third of the Japanese and Chinese ones in full-width digits.
Recall (phones per locale too) and preservation are measured for the three phone policies;
throughput for the default one through `batch_redaction` (what ingest uses) on traces of
about 1 KB, in one process and with two worker processes, warmed on traces of another seed
so that no measured value is in a cache. The goals (issue 18): phone recall >= 0.995,
>= 1,000 dense traces/s in one process, and >= 1.8x that with two workers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers as pn
from faker import Faker
from pydantic import SecretStr
from stdnum import iban as stdnum_iban

try:
    from _common import table
except ModuleNotFoundError:  # imported as benchmarks.redaction (tests use its corpus)
    from benchmarks._common import table

from evalkeeper.settings import Settings
from evalkeeper.traces.batch import RedactionPool, batch_redaction, usable_cores
from evalkeeper.traces.detectors import TOKEN_RE
from evalkeeper.traces.model import Trace
from evalkeeper.traces.redaction import BuiltinRedactor, RedactionConfig

LOCALES = {
    "en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "ja_JP": "JP",
    "es_ES": "ES", "it_IT": "IT", "pt_BR": "BR", "nl_NL": "NL", "en_AU": "AU",
    "zh_CN": "CN", "ko_KR": "KR", "th_TH": "TH",
}  # fmt: skip
GOALS = {"phone_recall": 0.995, "dense_traces_per_s": 1000.0, "two_workers_speedup": 1.8}

# Messages in languages written without spaces between words (Korean: particles glued on):
# how a part is written, and what joins the parts. `{phone}` is glued to the words.
NATIVE: dict[str, dict[str, Any]] = {
    "ja_JP": {
        "join": "",
        "name": ["「{name}」と申します。"],
        "phone": [
            "電話番号は{phone}です。",
            "「{phone}」までお電話ください。",
            "連絡先、{phone}。",
        ],
        "intl": ["海外からは{intl}へ。"],
        "old": ["旧番号{phone}（無効）。"],
        "email": ["メール：{email}、"],
        "card": ["カード番号{card}で支払い。"],
        "iban": ["返金は{iban}へ。"],
    },
    "zh_CN": {
        "join": "",
        "name": ["我是「{name}」。"],
        "phone": ["我的电话是{phone}。", "请拨打{phone}，谢谢。", "联系方式：{phone}、"],
        "intl": ["国外请拨{intl}。"],
        "old": ["旧号码{phone}（作废）。"],
        "email": ["邮箱：{email}，"],
        "card": ["卡号{card}。"],
        "iban": ["退款到{iban}。"],
    },
    "ko_KR": {
        "join": " ",
        "name": ["이름: {name}."],
        "phone": ["전화번호는 {phone}입니다.", "{phone}로 연락 주세요.", "연락처: {phone}이에요."],
        "intl": ["해외에서는 {intl}로 전화하세요."],
        "old": ["예전 번호 {phone}(사용 안 함)."],
        "email": ["이메일: {email}"],
        "card": ["카드 번호 {card}입니다."],
        "iban": ["환불 계좌 {iban}."],
    },
    "th_TH": {
        "join": "",
        "name": ["ชื่อ {name} ค่ะ"],
        "phone": ["โทร{phone}ได้เลยค่ะ", "เบอร์ติดต่อ{phone}นะคะ"],
        "intl": ["จากต่างประเทศโทร{intl}ค่ะ"],
        "old": ["เบอร์เก่า{phone}(ยกเลิก)"],
        "email": ["อีเมล {email} "],
        "card": ["บัตร {card} "],
        "iban": ["คืนเงินเข้าบัญชี {iban} "],
    },
}
ENGLISH = {
    "join": " ",
    "name": ["Hi, this is {name}."],
    "phone": ["Call me on {phone} please."],
    "intl": ["Or {intl} from abroad."],
    "old": ["Old number {phone} (ignore)."],
    "email": ["Write to {email}"],
    "card": ["my card is {card}"],
    "iban": ["refund to {iban}."],
}
FULL_WIDTH = str.maketrans({**{str(d): chr(0xFF10 + d) for d in range(10)}, "-": "\uff0d"})

DEFINITIONS = """\
Definitions
  left: the redacted message less its tokens, its known non-PII values and its other PII
    values that survived verbatim (each is its own miss), longest first.
  found (PHONE, CARD): in what is left, no 4-digit substring of the value's digits (extension included) occurs
    in any digit run of what is left (a run: digits joined by spaces, dashes, dots,
    slashes, parentheses or `x`, compacted).
  found (IBAN): no 4-character substring holding a digit of the compact IBAN occurs in the
    compacted letter-digit runs of what is left.
  found (EMAIL): no 4-character substring of the lowercased address that contains its `@`
    occurs in what is left (the address is no longer joined up).
  found (NAME): the configured name no longer occurs (case-insensitive).
  preserved: the sentence holding a non-PII value (`8 visits so far.`, `at 14:30.`) occurs
    in the redacted message as often as in the original (dates, times, prices, ids, years,
    small numbers, ISO timestamps): the value and its neighbours are untouched.
Exclusions (counted below, not scored)
  Faker cards of 12 digits (its Maestro): outside the 13-19 digits a card number has here.
  Faker phone numbers that libphonenumber cannot read as even a possible number of the
    locale's country (for example de_DE's `00008063608`, a leading international prefix
    followed by no country code): not a phone number anyone can dial; still in the corpus
    as text, just not counted as PII.
  Faker IBANs that are not valid (zh_CN's GB IBANs of 21 characters): left out."""

TRACE_TIME = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass
class Message:
    text: str
    locale: str = ""
    pii: list[tuple[str, str]] = field(default_factory=list)  # (kind, value)
    keep: list[tuple[str, str, str]] = field(default_factory=list)  # (category, value, sentence)


@dataclass
class Corpus:
    messages: list[Message]
    names: list[str]
    excluded: Counter[str]


def international_forms(number: pn.PhoneNumber, rng: random.Random) -> str:
    """The number written from its E.164 form in one of several international layouts."""
    e164 = pn.format_number(number, pn.PhoneNumberFormat.E164)
    intl = pn.format_number(number, pn.PhoneNumberFormat.INTERNATIONAL)
    cc, nsn = str(number.country_code), pn.national_significant_number(number)
    return rng.choice(
        [
            e164,
            intl,
            intl if number.extension else intl.replace(" ", "-"),
            f"+{cc} {nsn}",
            f"+{cc}.{nsn[:3]}.{nsn[3:6]}.{nsn[6:]}",
            f"00{cc} {nsn}",
            f"(+{cc}) {nsn[:3]} {nsn[3:]}",
        ]
    )


def non_pii(rng: random.Random) -> list[tuple[str, str, str]]:
    """(category, value, sentence) look-alikes that must survive."""
    y, mo, d = rng.randint(2020, 2030), rng.randint(1, 12), rng.randint(1, 28)
    h, mi = rng.randint(0, 23), rng.randint(0, 59)
    apt = f"APT-{y}{mo:02d}{d:02d}-{rng.randint(1, 9999):04d}"
    order = f"ORD-{rng.randint(100000, 999999)}"
    price = rng.choice(
        [
            f"${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(0, 99):02d}",
            f"{rng.randint(1, 999)},{rng.randint(0, 99):02d} €",
            f"£{rng.randint(1, 999)}.{rng.randint(0, 99):02d}",
            f"{rng.randint(1, 9)}.{rng.randint(100, 999)},{rng.randint(0, 99):02d} EUR",
            f"USD {rng.randint(10, 99999)}",
        ]
    )
    date = rng.choice(
        [f"{y}-{mo:02d}-{d:02d}", f"{d:02d}/{mo:02d}/{y}", f"{MONTHS[mo - 1]} {d}", f"{d}.{mo}.{y}"]
    )
    ts = f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{rng.randint(0, 59):02d}Z"
    time_ = f"{h:02d}:{mi:02d}"
    small = str(rng.randint(0, 999))
    year = str(y)
    inc = f"INC-{rng.randint(1000, 9999)}"
    return [
        ("id", apt, f"The appointment {apt} is confirmed."),
        ("date", date, f"It is booked for {date}"),
        ("time", time_, f"at {time_}."),
        ("id", order, f"Order {order} was charged"),
        ("price", price, f"{price}."),
        ("timestamp", ts, f"Logged at {ts}."),
        ("year", year, f"Customer since {year},"),
        ("small number", small, f"{small} visits so far."),
        ("id", inc, f"Ticket {inc} is open."),
    ]


def make_corpus(per_locale: int, seed: int) -> Corpus:
    rng = random.Random(seed)
    messages: list[Message] = []
    names: set[str] = set()
    excluded: Counter[str] = Counter()
    for li, (locale, region) in enumerate(LOCALES.items()):
        fake = Faker(locale)
        fake.seed_instance(seed + li)
        words = NATIVE.get(locale, ENGLISH)

        def say(part: str, words: dict[str, Any] = words, **values: str) -> str:
            return str(rng.choice(words[part]).format(**values))

        for _ in range(per_locale):
            msg = Message("", locale)
            parts: list[str] = []
            name = fake.name()
            names.add(name)
            msg.pii.append(("NAME", name))
            parts.append(say("name", name=name))
            national = fake.phone_number()
            try:
                number = pn.parse(national, region)
                possible = pn.is_possible_number(number)
            except pn.NumberParseException:
                possible = False
            if possible:
                if locale in ("ja_JP", "zh_CN") and rng.random() < 1 / 3:
                    national = national.translate(FULL_WIDTH)
                msg.pii.append(("PHONE", national))
                parts.append(say("phone", phone=national))
                intl = international_forms(number, rng)
                msg.pii.append(("PHONE", intl))
                parts.append(say("intl", intl=intl))
            else:
                excluded["PHONE (not a possible number)"] += 1
                parts.append(say("old", phone=national))
            email = fake.email()
            if rng.random() < 0.2:
                email = email.capitalize()
            msg.pii.append(("EMAIL", email))
            parts.append(say("email", email=email))
            card = fake.credit_card_number()
            if len(card) < 13:
                excluded["CARD (12 digits)"] += 1
            else:
                if len(card) == 16 and rng.random() < 0.5:
                    sep = rng.choice([" ", "-"])
                    card = sep.join(card[i : i + 4] for i in range(0, 16, 4))
                msg.pii.append(("CARD", card))
                parts.append(say("card", card=card))
            iban = fake.iban()
            if not stdnum_iban.is_valid(iban):
                excluded["IBAN (not valid: zh_CN's 21-character GB ones)"] += 1
            else:
                if rng.random() < 0.5:
                    iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
                msg.pii.append(("IBAN", iban))
                parts.append(say("iban", iban=iban))
            for category, value, sentence in rng.sample(non_pii(rng), 5):
                msg.keep.append((category, value, sentence))
                # English among words without spaces: a space after it, as writers put one
                parts.append(sentence + (" " if words["join"] == "" else ""))
            rng.shuffle(parts)
            msg.text = str(words["join"]).join(parts)
            messages.append(msg)
    return Corpus(messages, sorted(names), excluded)


_DIGIT_RUN = re.compile(r"\d[\d\s().\-/x]*\d|\d", re.IGNORECASE)
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")


def residue(message: Message, redacted: str, own: str) -> str:
    """What is left of `redacted` to look for `own` in: tokens, the known non-PII values
    and the other PII values that survived verbatim (their own misses) removed, longest
    first."""
    rest = TOKEN_RE.sub(" \u2022 ", redacted)
    others = [v for _, v, _ in message.keep] + [v for _, v in message.pii if v != own]
    for value in sorted(others, key=len, reverse=True):
        rest = rest.replace(value, " \u2022 ")
    return rest


def chunks(s: str, n: int = 4) -> list[str]:
    return [s[i : i + n] for i in range(len(s) - n + 1)]


def found(kind: str, value: str, rest: str) -> bool:
    if kind in ("PHONE", "CARD"):  # full-width digits and dashes compared as ASCII
        digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", value))
        rest = unicodedata.normalize("NFKC", rest)
        runs = [re.sub(r"\D", "", m.group()) for m in _DIGIT_RUN.finditer(rest)]
        return not any(c in r for c in chunks(digits) for r in runs)
    if kind == "IBAN":
        compact = value.replace(" ", "").upper()
        runs = [m.group().replace(" ", "").upper() for m in _ALNUM_RUN.finditer(rest)]
        return not any(
            c in r for c in chunks(compact) if any(ch.isdigit() for ch in c) for r in runs
        )
    if kind == "EMAIL":
        low, at = value.lower(), value.index("@")
        pieces = [low[i : i + 4] for i in range(max(0, at - 3), at + 1)]
        return not any(p in rest.lower() for p in pieces)
    return value.casefold() not in rest.casefold()


def score(corpus: Corpus, redactor: BuiltinRedactor) -> dict[str, Any]:
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    lost: dict[str, list[str]] = defaultdict(list)
    phones: Counter[str] = Counter()  # per locale
    phones_found: Counter[str] = Counter()
    for msg in corpus.messages:
        out, _ = redactor.redact(msg.text)
        for kind, value in msg.pii:
            total[kind] += 1
            phones[msg.locale] += kind == "PHONE"
            if found(kind, value, residue(msg, out, value)):
                hit[kind] += 1
                phones_found[msg.locale] += kind == "PHONE"
            else:
                misses[kind].append(value)
        for category, value, sentence in msg.keep:
            seen[category] += 1
            if out.count(sentence) >= msg.text.count(sentence):
                kept[category] += 1
            else:
                lost[category].append(value)
    return {
        "recall": {k: hit[k] / total[k] for k in sorted(total)},
        "total": dict(total),
        "kept": dict(kept),
        "seen": dict(seen),
        "preserved": sum(kept.values()) / sum(seen.values()),
        "misses": misses,
        "lost": lost,
        "phone_recall_by_locale": {k: phones_found[k] / n for k, n in phones.items() if n},
        "phones_by_locale": dict(phones),
    }


def make_traces(corpus: Corpus, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    traces: list[dict[str, Any]] = []
    texts = [m.text for m in corpus.messages]
    i = 0
    while i + 2 < len(texts):
        trace: dict[str, Any] = {
            "trace_id": f"{rng.getrandbits(64):016x}",
            "inputs": {"messages": [{"role": "user", "content": texts[i]}]},
            "outputs": {
                "content": texts[i + 1][:360],
                "tool_calls": [
                    {
                        "name": "find_customer",
                        "arguments": {"query": texts[i + 2][:160], "limit": 5},
                    }
                ],
            },
            "metadata": {"latency_ms": rng.randint(80, 2400), "tags": ["prod", "eu"], "ok": True},
        }
        i += 3
        traces.append(trace)
    return traces


def make_typical_traces(corpus: Corpus, seed: int) -> list[dict[str, Any]]:
    """About 1 KB each: a user message with PII (half a dense message), the agent's reply
    and tool arguments made of the look-alike sentences (dates, prices, ids), metadata."""
    rng = random.Random(seed)
    traces: list[dict[str, Any]] = []
    for msg in corpus.messages:
        look_alikes = [sentence for _, _, sentence in non_pii(rng)]
        trace: dict[str, Any] = {
            "trace_id": f"{rng.getrandbits(64):016x}",
            "inputs": {"messages": [{"role": "user", "content": msg.text[:420]}]},
            "outputs": {
                "content": " ".join(look_alikes[:6]) + " Is there anything else I can do?",
                "tool_calls": [
                    {"name": "book", "arguments": {"note": " ".join(look_alikes[6:]), "n": 2}}
                ],
            },
            "metadata": {"latency_ms": rng.randint(80, 2400), "tags": ["prod", "eu"], "ok": True},
        }
        traces.append(trace)
    return traces


def as_traces(rows: list[dict[str, Any]]) -> list[Trace]:
    return [Trace.model_validate(r | {"time": TRACE_TIME}) for r in rows]


def throughput(
    traces: list[Trace], warm: list[Trace], settings: Settings, workers: int
) -> dict[str, Any]:
    """Traces redacted a second by `batch_redaction` (what ingest uses) with `workers`
    processes, in batches of 1,000 (ingest's batch size). Before the clock starts, the
    workers (or this process) have redacted `warm`, traces of another seed: processes are
    up and libphonenumber's patterns compiled, but no value measured here is in a cache."""
    size = sum(len(t.model_dump_json(exclude_none=True).encode()) for t in traces) / len(traces)
    warming = batch_redaction(
        settings.model_copy(
            update={"redaction": settings.redaction.model_copy(update={"workers": workers})}
        )
    )
    t0 = time.perf_counter()
    if isinstance(warming, RedactionPool):
        warming.start(wait=True)  # else the first batches are redacted here meanwhile
    start_s = time.perf_counter() - t0
    warming.redact(warm)
    if workers == 1:  # a fresh redactor: its caches empty (module-level patterns kept)
        warming.close()
        redaction = batch_redaction(
            settings.model_copy(
                update={"redaction": settings.redaction.model_copy(update={"workers": 1})}
            )
        )
    else:  # the same workers, warm, their caches holding only the other seed's values
        redaction = warming
        redaction.stats.clear()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(traces), 1000):
            redaction.redact(traces[i : i + 1000])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        redaction.close()
    return {
        "traces": len(traces),
        "bytes": size,
        "workers": workers,
        "traces_per_s": len(traces) / wall,
        "parent_cpu_share": cpu / wall,
        # one process: traces per CPU second of it, what the wall clock would give on an
        # idle core (a shared machine's other load slows the wall clock, not this)
        "traces_per_cpu_s": len(traces) / cpu if workers == 1 and cpu else None,
        "start_s": start_s,
        "findings_per_trace": sum(redaction.stats.values()) / len(traces),
    }


def median_run(
    traces: list[Trace], warm: list[Trace], settings: Settings, workers: int, repeats: int
) -> dict[str, Any]:
    """`throughput` `repeats` times (a fresh redactor or pool each), the median run by
    traces/s, with the lowest and highest figures."""
    runs = sorted(
        (throughput(traces, warm, settings, workers) for _ in range(repeats)),
        key=lambda r: r["traces_per_s"],
    )
    mid = dict(runs[len(runs) // 2])
    mid["min_traces_per_s"] = runs[0]["traces_per_s"]
    mid["max_traces_per_s"] = runs[-1]["traces_per_s"]
    return mid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages-per-locale", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--show-misses", type=int, default=5, help="examples printed per kind")
    ap.add_argument("--repeats", type=int, default=5, help="throughput runs per row (median)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    corpus = make_corpus(args.messages_per_locale, args.seed)
    print(
        f"corpus: {len(corpus.messages):,} messages, {len(LOCALES)} locales, seed {args.seed} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    print(DEFINITIONS)
    print("excluded: " + (", ".join(f"{k} {v}" for k, v in corpus.excluded.items()) or "none"))
    key = b"benchmark-key-" + bytes(18)
    results = {}
    for policy in ("hybrid", "possible", "valid"):
        config = RedactionConfig(names=tuple(corpus.names), phone_policy=policy)
        results[policy] = score(corpus, BuiltinRedactor(config, key))
    main_result = results["hybrid"]
    kinds = sorted(main_result["recall"])
    print()
    print(table(
        ["phone policy", *[f"recall {k}" for k in kinds], "preserved"],
        [[p, *[r["recall"][k] for k in kinds], r["preserved"]] for p, r in results.items()],
    ))  # fmt: skip
    print()
    print(table(
        ["non-PII category", "values", "preserved (hybrid)", "preserved (possible)", "preserved (valid)"],
        [[c, n, *[results[p]["kept"].get(c, 0) / n for p in results]]
         for c, n in sorted(main_result["seen"].items())],
    ))  # fmt: skip
    print()
    print(table(
        ["locale", "phones", *[f"recall ({p})" for p in results]],
        [[loc, n, *[results[p]["phone_recall_by_locale"][loc] for p in results]]
         for loc, n in main_result["phones_by_locale"].items()],
    ))  # fmt: skip
    print()
    print(table(["kind", "values"], sorted(main_result["total"].items())))
    for kind, values in main_result["misses"].items():
        print(f"missed {kind} (hybrid), e.g.: {values[: args.show_misses]}")
    for category, values in main_result["lost"].items():
        print(f"lost {category} (hybrid), e.g.: {values[: args.show_misses]}")

    cores = usable_cores()
    with tempfile.TemporaryDirectory(prefix="evalkeeper-redaction-") as tmp:
        settings = Settings(
            warehouse=Path(tmp) / "w.duckdb",
            redaction_key=SecretStr("benchmark-redaction-key"),
            redaction_names=corpus.names,
        )
        other = make_corpus(max(30, args.messages_per_locale // 5), args.seed + 1)
        warm = as_traces(make_typical_traces(other, args.seed + 1))
        sets = {
            "dense": as_traces(make_traces(corpus, args.seed)),
            "typical": as_traces(make_typical_traces(corpus, args.seed)),
        }
        runs = {
            (name, w): median_run(traces, warm, settings, w, args.repeats)
            for name, traces in sets.items()
            for w in (1, 2)
        }
    print()
    print(
        f"throughput: batch_redaction (ingest's), batches of 1,000, {cores} usable core(s), median "
        f"of {args.repeats} runs; dense: "
        "every part of the trace full of PII; typical: PII in the user message, look-alikes "
        "in the reply and tool arguments"
    )
    print(
        table(
            ["traces", "processes", "n", "mean bytes", "findings/trace", "traces/s (median)",
             "min", "max", "vs 1 process", "workers start s", "traces/CPU-s"],
            [[name, "1 (this one)" if w == 1 else f"{w} workers", r["traces"], r["bytes"],
              r["findings_per_trace"], r["traces_per_s"], r["min_traces_per_s"],
              r["max_traces_per_s"],
              r["traces_per_s"] / runs[(name, 1)]["traces_per_s"],
              r["start_s"] if w > 1 else "-", r["traces_per_cpu_s"] or "-"]
             for (name, w), r in runs.items()],
        )
    )  # fmt: skip
    one, two = runs[("dense", 1)]["traces_per_s"], runs[("dense", 2)]["traces_per_s"]
    figures = {
        "phone_recall": main_result["recall"]["PHONE"],
        "dense_traces_per_s": one,
        "two_workers_speedup": two / one,
    }
    print()
    print(
        table(
            ["goal", "wanted", "measured", "met"],
            [
                [k, f">= {GOALS[k]:g}", v, "yes" if v >= GOALS[k] else "NO"]
                for k, v in figures.items()
            ],
        )
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"total {time.perf_counter() - t0:.1f} s ({cores} usable core(s), load average {load})")
    line = {
        "recall": main_result["recall"],
        "phone_recall_by_locale": {
            k: round(v, 4) for k, v in main_result["phone_recall_by_locale"].items()
        },
        "preserved": main_result["preserved"],
        "dense_traces_per_s": round(one, 1),
        "dense_traces_per_s_two_workers": round(two, 1),
        "dense_traces_per_cpu_s": round(runs[("dense", 1)]["traces_per_cpu_s"] or 0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "two_workers_speedup": round(two / one, 2),
        "goals_met": {k: v >= GOALS[k] for k, v in figures.items()},
        "usable_cores": cores,
        "throughput": {
            f"{name}/{w}": {
                k: round(r[k], 1)
                for k in ("traces_per_s", "min_traces_per_s", "max_traces_per_s", "bytes")
            }
            for (name, w), r in runs.items()
        },
        "phone_policy": "hybrid",
        "by_policy": {
            p: {"recall": r["recall"], "preserved": r["preserved"]} for p, r in results.items()
        },
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
