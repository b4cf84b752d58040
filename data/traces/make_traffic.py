"""Write `data/traces/traffic-YYYY-MM-DD.jsonl`: four days of production traffic of the demo
agent, in the trace JSONL form, with a deploy of v2 in the middle.

    uv run python data/traces/make_traffic.py [--seed 20261127] [--per-day 900]

Seeded: the same seed (and the locked Faker release) writes the same bytes. The traffic:

- 2026-11-27 00:00Z to 2026-12-01 00:00Z; arrivals follow a daily cycle (busiest around
  14:00 UTC, about a tenth of that at 03:00), Poisson within each minute;
- inputs drawn from `data/datasets/appointments.jsonl` (the example's messages, customer id
  and retrieved passages), varied: another customer id, a greeting, and in about a third of
  the traces the user gives a name, a phone number or an e-mail address (raw: this is what
  an application logs; `evalkeeper traces ingest` redacts it before storing);
- the agent is `evalkeeper.demo.agent` (`respond`, `latency_seconds`: its answers and
  simulated latency, without sleeping), v1 (`appointments-agent 1.4.0`) until the deploy at
  `DEPLOY` (written to `deploys.json`), v2 (`appointments-agent 1.5.0`) after;
- latency is the agent's plus the network's (lognormal, median ~60 ms), so `latency_ok`
  (1.2 s) flags ~1% of v1 traces and ~9% of v2's (its slow path);
- tool errors: a rare transient one in both versions (0.5%); in v2, a cancellation turned
  into a `reschedule_appointment` with no free slot fails in the booking system in 60% of
  cases (`error` set, `metadata.tool_errors` = 1);
- user feedback on about 8% of the traces, thumbs down more often when the answer failed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from faker import Faker  # noqa: E402

from evalkeeper.demo import agent as demo_agent  # noqa: E402
from evalkeeper.traces.model import iso_utc  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent
DATASET = ROOT / "data" / "datasets" / "appointments.jsonl"
START = datetime(2026, 11, 27, tzinfo=UTC)
DAYS = 4
DEPLOY = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
VERSIONS = {
    "v1": demo_agent.v1.__evalkeeper_pin__["agent_version"],  # type: ignore[attr-defined]
    "v2": demo_agent.v2.__evalkeeper_pin__["agent_version"],  # type: ignore[attr-defined]
}
MODEL = demo_agent.v1.__evalkeeper_pin__["model"]  # type: ignore[attr-defined]
LOCALES = ("en_IE", "en_GB", "en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
GREETINGS = ("", "", "", "Hi, ", "Hello, ", "Good morning. ", "Hey there, ")
CHANNELS = (("web", 0.55), ("app", 0.35), ("sms", 0.10))
PII_SHARE = 0.33


def hourly_weight(hour: float) -> float:
    """Relative arrival rate at `hour` (UTC): a daily cycle peaking at 14:00."""
    return 0.55 + 0.45 * math.cos((hour - 14.0) / 24.0 * 2 * math.pi)


def arrivals(rng: random.Random, per_day: int) -> list[datetime]:
    mean = sum(hourly_weight(m / 60) for m in range(1440)) / 1440
    out = []
    for minute in range(DAYS * 1440):
        when = START + timedelta(minutes=minute)
        lam = per_day / 1440 * hourly_weight(when.hour + when.minute / 60) / mean
        # Poisson count by inversion (small rates)
        k, p, u = 0, math.exp(-lam), rng.random()
        cum = p
        while u > cum:
            k += 1
            p *= lam / k
            cum += p
        out.extend(when + timedelta(seconds=rng.uniform(0, 60)) for _ in range(k))
    return sorted(out)


def pii_sentence(fake: Faker, rng: random.Random) -> str:
    kind = rng.choice(("name", "phone", "email", "name_phone", "name_email"))
    name = fake.name()
    phone = fake.phone_number()
    email = fake.email()
    return {
        "name": f"This is {name}.",
        "phone": f"My number is {phone}.",
        "email": f"You can email me at {email}.",
        "name_phone": f"It's {name}, call me on {phone} if needed.",
        "name_email": f"{name} here ({email}).",
    }[kind]


def vary(example: dict[str, Any], rng: random.Random, fakers: list[Faker]) -> dict[str, Any]:
    """The example's inputs as a new user sends them; PII in a share of the user turns."""
    inputs = json.loads(json.dumps(example["inputs"]))
    inputs["customer_id"] = f"C-{rng.randint(1000, 9999)}"
    messages = inputs.get("messages") or []
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last is None:
        return inputs
    plain = dict(inputs, messages=[dict(m) for m in messages])
    last["content"] = rng.choice(GREETINGS) + last["content"]
    if rng.random() < PII_SHARE:
        sentence = pii_sentence(rng.choice(fakers), rng)
        with_pii = last["content"] + " " + sentence
        before = demo_agent.respond(inputs, "v1")["tool_calls"]
        last["content"] = with_pii
        if demo_agent.respond(inputs, "v1")["tool_calls"] != before:
            last["content"] = sentence + " " + with_pii.removesuffix(" " + sentence)
            if demo_agent.respond(inputs, "v1")["tool_calls"] != before:
                return plain  # the rules read the PII as a date or time: leave it out
    return inputs


def run(inputs: dict[str, Any], release: str, rng: random.Random) -> dict[str, Any]:
    """What the deployed agent did: outputs, latency, tool calls, error."""
    answer = demo_agent.respond(inputs, release)
    latency_ms = demo_agent.latency_seconds(inputs, release) * 1000
    latency_ms += rng.lognormvariate(math.log(60), 0.6)
    if rng.random() < 0.01:  # a slow network or a cold container, any release
        latency_ms += rng.uniform(1100, 2500)
    calls = answer["tool_calls"]
    error = None
    if calls and rng.random() < 0.005:
        error = f"ToolError: {calls[0]['name']}: timeout after 5 s (booking system)"
    if (
        release == "v2"
        and any(c["name"] == "reschedule_appointment" for c in calls)
        and _was_cancellation(inputs)
        and rng.random() < 0.6
    ):
        error = "ToolError: reschedule_appointment: no free slot at the requested time"
    return {
        "outputs": {"reply": answer["reply"]},
        "tool_calls": calls,
        "latency_ms": round(latency_ms, 1),
        "error": error,
    }


def _was_cancellation(inputs: dict[str, Any]) -> bool:
    return demo_agent.respond(inputs, "v1")["tool_calls"] != demo_agent.respond(inputs, "v2")[
        "tool_calls"
    ] and any(
        c["name"] == "cancel_appointment" for c in demo_agent.respond(inputs, "v1")["tool_calls"]
    )


def feedback(rng: random.Random, failed: bool) -> dict[str, Any] | None:
    if rng.random() >= 0.08:
        return None
    down = rng.random() < (0.7 if failed else 0.12)
    return {"score": 0.0 if down else 1.0, "comment": None}


def make(seed: int, per_day: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    fakers = []
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed + i)
        fakers.append(fake)
    examples = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    by_day: dict[str, list[dict[str, Any]]] = {}
    for when in arrivals(rng, per_day):
        release = "v1" if when < DEPLOY else "v2"
        example = rng.choice(examples)
        inputs = vary(example, rng, fakers)
        did = run(inputs, release, rng)
        failed = did["error"] is not None or did["latency_ms"] > 1200
        trace: dict[str, Any] = {
            "trace_id": f"{rng.getrandbits(128):032x}",
            "time": iso_utc(when.replace(microsecond=when.microsecond // 1000 * 1000)),
            "service": "appointments-agent",
            "environment": "prod",
            "version": VERSIONS[release],
            "model": MODEL,
            "inputs": inputs,
            "outputs": did["outputs"],
            "latency_ms": did["latency_ms"],
            "error": did["error"],
            "tool_calls": did["tool_calls"],
            "conversation_id": f"conv-{rng.getrandbits(48):012x}",
            "feedback": feedback(rng, failed),
            "metadata": {
                "release": release,
                "channel": rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0],
                "tool_errors": int(did["error"] is not None),
                "example": example["id"],
                "category": example["metadata"]["category"],
            },
        }
        by_day.setdefault(when.date().isoformat(), []).append(trace)
    return by_day


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--per-day", type=int, default=900, help="mean traces a day")
    args = ap.parse_args()
    by_day = make(args.seed, args.per_day)
    for old in OUT_DIR.glob("traffic-*.jsonl"):
        old.unlink()
    total = 0
    for day, traces in sorted(by_day.items()):
        path = OUT_DIR / f"traffic-{day}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for t in traces:
                fh.write(json.dumps(t, ensure_ascii=False, sort_keys=False) + "\n")
        total += len(traces)
        print(f"{path.relative_to(ROOT)}: {len(traces):,} traces")
    deploys = [{"version": VERSIONS["v2"], "previous": VERSIONS["v1"], "time": iso_utc(DEPLOY)}]
    (OUT_DIR / "deploys.json").write_text(json.dumps(deploys, indent=2) + "\n")
    print(f"{total:,} traces; deploy of {VERSIONS['v2']} at {iso_utc(DEPLOY)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
