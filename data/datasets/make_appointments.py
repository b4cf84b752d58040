"""Write `appointments.jsonl`: the bundled sample dataset for the appointment-scheduling agent.

Deterministic (no randomness, no clock): run `uv run python data/datasets/make_appointments.py`
from the repository root and the file is rewritten byte for byte. The examples are written by
hand below; this script only adds the shared context passages, the incident metadata and a few
consistency checks (weekday names match their dates, `must_include` strings occur in the
reference reply, tool arguments are well formed).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("appointments.jsonl")
CATEGORIES = (
    "availability_lookup",
    "booking",
    "cancellation",
    "policy_question",
    "escalation",
    "small_talk",
)

# -- retrieved passages ---------------------------------------------------------------------

P = {
    "policy-cancel-24h": (
        "Appointments can be cancelled free of charge up to 24 hours before the start time. "
        "Cancellations made less than 24 hours before the appointment are charged a "
        "late-cancellation fee of 25 EUR."
    ),
    "policy-no-show": (
        "If you miss an appointment without letting us know (a no-show), the full price of "
        "the appointment is charged. After two no-shows within 12 months, future bookings "
        "require a deposit."
    ),
    "policy-opening-hours": (
        "Harbour Clinic is open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00. We are "
        "closed on Sundays and on public holidays (25 and 26 December, 1 January)."
    ),
    "policy-reschedule": (
        "Appointments can be rescheduled free of charge with at least 24 hours' notice, online, "
        "in the app or here in chat. Each appointment can be moved twice; after that, please "
        "cancel and book again."
    ),
    "policy-deposit": (
        "Treatments longer than 60 minutes (sports massage, teeth whitening) require a deposit "
        "of 20 EUR when booking. The deposit is deducted from the final price and refunded if "
        "you cancel more than 24 hours in advance."
    ),
    "policy-late-arrival": (
        "If you arrive more than 15 minutes late, we may need to shorten or rebook your "
        "appointment, and the full price may still be charged."
    ),
    "policy-accessibility": (
        "The clinic is on the ground floor with step-free wheelchair access, an accessible "
        "toilet and a hearing loop at reception. Assistance dogs are welcome."
    ),
    "policy-parking": (
        "There is free parking for patients behind the building (entrance on Mill Lane) for up "
        "to 2 hours. The nearest bus stop is Harbour Road, served by lines 7 and 15."
    ),
    "policy-payment": (
        "We accept card, Apple Pay and Google Pay; we do not accept cash. Payment is taken at "
        "the end of your appointment."
    ),
    "policy-insurance": (
        "We can bill most private health insurers directly; please bring your insurance policy "
        "number. Claims for physiotherapy need a GP referral."
    ),
    "policy-children": (
        "Children under 16 must be accompanied by a parent or guardian. Dental check-ups for "
        "children under 12 are free."
    ),
    "policy-reminders": (
        "We send an SMS reminder 48 hours before your appointment and an email confirmation "
        "as soon as you book."
    ),
    "service-list": (
        "Our services: physiotherapy (45 min, 60 EUR), sports massage (90 min, 85 EUR), dental "
        "check-up (30 min, 45 EUR), hygienist (40 min, 65 EUR), eye test (30 min, 35 EUR), GP "
        "consultation (15 min, 55 EUR)."
    ),
    "policy-escalation": (
        "Billing questions, complaints and legal or data-protection requests are handled by "
        "our patient care team, who reply within one working day."
    ),
    "policy-medical": (
        "Our assistant cannot give medical advice. For urgent symptoms call 112; for "
        "non-urgent questions a clinician will call you back within one working day."
    ),
}


def ctx(*ids: str) -> list[dict[str, str]]:
    return [{"id": i, "text": P[i]} for i in ids]


# -- tool calls -----------------------------------------------------------------------------


def avail(day: int, service: str | None = None, tod: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"date": f"2026-12-{day:02d}"}
    if service:
        args["service"] = service
    if tod:
        args["time_of_day"] = tod
    return {"name": "check_availability", "args": args}


def book(day: int, time: str, service: str, customer: str) -> dict[str, Any]:
    return {
        "name": "book_appointment",
        "args": {
            "date": f"2026-12-{day:02d}",
            "time": time,
            "service": service,
            "customer_id": customer,
        },
    }


def cancel(appointment_id: str) -> dict[str, Any]:
    return {"name": "cancel_appointment", "args": {"appointment_id": appointment_id}}


def resched(appointment_id: str, day: int, time: str) -> dict[str, Any]:
    return {
        "name": "reschedule_appointment",
        "args": {"appointment_id": appointment_id, "date": f"2026-12-{day:02d}", "time": time},
    }


def esc(reason: str) -> dict[str, Any]:
    return {"name": "escalate_to_human", "args": {"reason": reason}}


# -- examples -------------------------------------------------------------------------------

ROWS: list[dict[str, Any]] = []


def add(
    id: str,
    category: str,
    messages: str | list[tuple[str, str]],
    customer: str,
    context: list[dict[str, str]],
    reply: str,
    must: list[str],
    tools: list[dict[str, Any]],
    incident: str | None = None,
    **extra: Any,
) -> None:
    if isinstance(messages, str):
        messages = [("user", messages)]
    meta: dict[str, Any] = {
        "category": category,
        "critical": incident is not None,
        "incident_id": incident,
        "promoted_from_run": (
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"evalkeeper/appointments/{incident}"))
            if incident
            else None
        ),
        "locale": "en-IE",
        "source": "prod-trace" if incident else "synthetic",
    }
    meta.update(extra)
    ROWS.append(
        {
            "id": id,
            "inputs": {
                "messages": [{"role": r, "content": c} for r, c in messages],
                "customer_id": customer,
                "context": context,
            },
            "reference_outputs": {"reply": reply, "must_include": must, "tool_calls": tools},
            "metadata": meta,
        }
    )


# fmt: off
CAT = "availability_lookup"
add(
    "avail-001", CAT,
    "Hi, do you have any physio appointments on Thursday 3rd December?",
    "C-1042", ctx("policy-opening-hours"),
    "Let me check physiotherapy availability for Thursday 3 December.",
    ["3 December"], [avail(3, "physiotherapy")],
)
add(
    "avail-002", CAT,
    "Any free slots for a sports massage on the 11th in the afternoon?",
    "C-1107", ctx("policy-opening-hours", "policy-deposit"),
    "Let me check massage availability for Friday 11 December in the afternoon.",
    ["11 December", "afternoon"], [avail(11, "massage", "afternoon")],
)
add(
    "avail-003", CAT,
    "What times are available for an eye test on 2026-12-08?",
    "C-1213", ctx("policy-opening-hours"),
    "Let me check eye test availability for Tuesday 8 December.",
    ["8 December"], [avail(8, "eye test")],
)
add(
    "avail-004", CAT,
    "Is there anything open Saturday 12 Dec in the morning for a cleaning with the hygienist?",
    "C-1250", ctx("policy-opening-hours"),
    "Let me check hygienist availability for Saturday 12 December in the morning. On "
    "Saturdays we are open 09:00-13:00.",
    ["12 December", "morning"], [avail(12, "hygienist", "morning")],
)
add(
    "avail-005", CAT,
    "Can I see a GP on Monday 14 December? Evening would be best, I work until 5.",
    "C-1318", ctx("policy-opening-hours"),
    "Let me check consultation availability for Monday 14 December in the evening. "
    "We are open until 18:00 on weekdays.",
    ["14 December"], [avail(14, "consultation", "evening")],
)
add(
    "avail-006", CAT,
    "Do you have any dental check-up slots on Sunday 13 December?",
    "C-1333", ctx("policy-opening-hours"),
    "Sorry, we're closed on Sundays, so there are no slots on Sunday 13 December. Harbour "
    "Clinic is open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00.",
    ["closed"], [],
)
add(
    "avail-007", CAT,
    [
        ("user", "I need a check-up for my daughter."),
        ("assistant", "Of course. Which day would suit you?"),
        ("user", "Wednesday the 16th, after school if possible so afternoon."),
    ],
    "C-1401", ctx("policy-opening-hours", "policy-children"),
    "Let me check dental check-up availability for Wednesday 16 December in the afternoon.",
    ["16 December"], [avail(16, "dental check-up", "afternoon")],
)
add(
    "avail-008", CAT,
    "when's your next free massage on friday 4 december",
    "C-1422", [],
    "Let me check massage availability for Friday 4 December.",
    ["4 December"], [avail(4, "massage")],
)
add(
    "avail-009", CAT,
    "Could you check 03/12 for physiotherapy please, ideally morning",
    "C-1456", ctx("policy-opening-hours"),
    "Let me check physiotherapy availability for Thursday 3 December in the morning.",
    ["3 December", "morning"], [avail(3, "physiotherapy", "morning")],
)
add(
    "avail-010", CAT,
    "do u have anything dec 9 for an eye exam",
    "C-1490", [],
    "Let me check eye test availability for Wednesday 9 December.",
    ["9 December"], [avail(9, "eye test")],
)
add(
    "avail-011", CAT,
    "Any physio slots on the 10th after work?",
    "C-1502", ctx("policy-opening-hours"),
    "Let me check physiotherapy availability for Thursday 10 December in the evening. We are "
    "open until 18:00 on weekdays.",
    ["10 December"], [avail(10, "physiotherapy", "evening")],
)
add(
    "avail-012", CAT,
    "Is 10:00 on Tuesday 15 December free for a hygienist appointment? Don't book it yet, "
    "just checking.",
    "C-1534", ctx("policy-opening-hours", "policy-cancel-24h"),
    "Let me check hygienist availability for Tuesday 15 December. I won't book anything yet.",
    ["15 December"], [avail(15, "hygienist")],
    incident="INC-2017",
)
add(
    "avail-013", CAT,
    "Can I come in for a massage on the 20th?",
    "C-1561", ctx("policy-opening-hours"),
    "Sorry, we're closed on Sundays, so I can't offer anything on Sunday 20 December. "
    "Harbour Clinic is open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00.",
    ["closed"], [],
    incident="INC-2033",
)
add(
    "avail-014", CAT,
    "What's free on Tuesday 22 December?",
    "C-1599", ctx("policy-opening-hours"),
    "Let me check availability for Tuesday 22 December.",
    ["22 December"], [avail(22)],
)
add(
    "avail-015", CAT,
    [
        ("user", "Do you have physio on Friday 18th?"),
        ("assistant", "Let me check physiotherapy availability for Friday 18 December."),
        ("user", "Actually, could you look at Saturday the 19th instead, morning?"),
    ],
    "C-1603", ctx("policy-opening-hours"),
    "Let me check physiotherapy availability for Saturday 19 December in the morning.",
    ["19 December"], [avail(19, "physiotherapy", "morning")],
)
add(
    "avail-016", CAT,
    "Hiya, any chance of an eye test this month? Thursday 17 December would suit, mornings only",
    "C-1648", [],
    "Let me check eye test availability for Thursday 17 December in the morning.",
    ["17 December", "morning"], [avail(17, "eye test", "morning")],
)
add(
    "avail-017", CAT,
    "Availability for a GP consultation on 29 Dec, afternoon?",
    "C-1672", ctx("policy-opening-hours"),
    "Let me check consultation availability for Tuesday 29 December in the afternoon.",
    ["29 December"], [avail(29, "consultation", "afternoon")],
)
add(
    "avail-018", CAT,
    "Are there any openings on Wednesday 30 December for a sports massage? Morning or early "
    "afternoon is fine.",
    "C-1690", ctx("policy-opening-hours", "policy-deposit"),
    "Let me check massage availability for Wednesday 30 December.",
    ["30 December"], [avail(30, "massage")],
)

CAT = "booking"
add(
    "book-001", CAT,
    "Please book me a physio appointment on Thursday 3 December at 10:30.",
    "C-1042", ctx("policy-cancel-24h"),
    "You're booked in for physiotherapy on Thursday 3 December at 10:30. If you need to "
    "cancel, it's free up to 24 hours before.",
    ["3 December", "10:30"], [book(3, "10:30", "physiotherapy", "C-1042")],
)
add(
    "book-002", CAT,
    [
        ("user", "Any massage slots on Friday 11 December?"),
        ("assistant", "Yes — on Friday 11 December we have 10:00, 14:30 and 16:00 free."),
        ("user", "14:30 please"),
    ],
    "C-1107", ctx("policy-deposit"),
    "You're booked in for a sports massage on Friday 11 December at 14:30. A deposit of 20 EUR "
    "is due when booking.",
    ["14:30"], [book(11, "14:30", "massage", "C-1107")],
)
add(
    "book-003", CAT,
    "I'd like to book an eye test for 8 Dec at 9am",
    "C-1730", ctx("policy-cancel-24h"),
    "You're booked in for an eye test on Tuesday 8 December at 09:00.",
    ["8 December", "09:00"], [book(8, "09:00", "eye test", "C-1730")],
)
add(
    "book-004", CAT,
    "Can you reserve a hygienist appointment on Saturday 12 December at 11.15?",
    "C-1744", ctx("policy-opening-hours", "policy-cancel-24h"),
    "You're booked in with the hygienist on Saturday 12 December at 11:15.",
    ["12 December", "11:15"], [book(12, "11:15", "hygienist", "C-1744")],
)
add(
    "book-005", CAT,
    "Book a GP consultation 2026-12-14 16:45 please",
    "C-1788", [],
    "You're booked in for a GP consultation on Monday 14 December at 16:45.",
    ["14 December", "16:45"], [book(14, "16:45", "consultation", "C-1788")],
)
add(
    "book-006", CAT,
    "Could I book a dental check-up on Wednesday 16 December at half past three?",
    "C-1795", ctx("policy-children", "policy-cancel-24h"),
    "You're booked in for a dental check-up on Wednesday 16 December at 15:30.",
    ["16 December", "15:30"], [book(16, "15:30", "dental check-up", "C-1795")],
)
add(
    "book-007", CAT,
    "Can you book the same as last time (A-4410) — sports massage, Friday 18 December at 17:00.",
    "C-1187", ctx("policy-deposit", "policy-cancel-24h"),
    "You're booked in for a sports massage on Friday 18 December at 17:00. A deposit of "
    "20 EUR is due when booking.",
    ["18 December", "17:00"], [book(18, "17:00", "massage", "C-1187")],
    incident="INC-2058",
)
add(
    "book-008", CAT,
    "pls book physio tue 15th 2pm",
    "C-1822", [],
    "You're booked in for physiotherapy on Tuesday 15 December at 14:00.",
    ["15 December", "14:00"], [book(15, "14:00", "physiotherapy", "C-1822")],
)
add(
    "book-009", CAT,
    [
        ("user", "I want to book a hygienist appointment."),
        ("assistant", "Sure — which day and time would suit you?"),
        ("user", "Tuesday 29 December at 10:00"),
    ],
    "C-1850", ctx("policy-cancel-24h"),
    "You're booked in with the hygienist on Tuesday 29 December at 10:00. Cancelling is free "
    "up to 24 hours before.",
    ["29 December", "10:00"], [book(29, "10:00", "hygienist", "C-1850")],
)
add(
    "book-010", CAT,
    "I'd like to book a sports massage please.",
    "C-1863", ctx("policy-deposit"),
    "I can book a sports massage for you — which day and time would suit you?",
    ["which day"], [],
)
add(
    "book-011", CAT,
    "Can I move my appointment A-5120 to Wednesday 9 December at 13:00?",
    "C-1877", ctx("policy-reschedule"),
    "Done — appointment A-5120 is now on Wednesday 9 December at 13:00. Rescheduling is free "
    "with at least 24 hours' notice.",
    ["9 December", "13:00"], [resched("A-5120", 9, "13:00")],
)
add(
    "book-012", CAT,
    [
        ("user", "I need to reschedule A-6031."),
        ("assistant", "No problem. What date and time would you like instead?"),
        ("user", "Thursday 10 December, 11am if you have it"),
    ],
    "C-1901", ctx("policy-reschedule"),
    "Done — appointment A-6031 is now on Thursday 10 December at 11:00.",
    ["10 December", "11:00"], [resched("A-6031", 10, "11:00")],
)
add(
    "book-013", CAT,
    "Please push my appointment A-4987 back to Friday 4 December at 15:00 — don't cancel it!",
    "C-1915", ctx("policy-reschedule", "policy-cancel-24h"),
    "Done — appointment A-4987 is now on Friday 4 December at 15:00. Nothing has been "
    "cancelled.",
    ["4 December", "15:00"], [resched("A-4987", 4, "15:00")],
    incident="INC-2064",
)
add(
    "book-014", CAT,
    "Book me in for a GP appointment on Monday 7 December, 12:00 if possible",
    "C-1938", ctx("policy-opening-hours"),
    "You're booked in for a GP consultation on Monday 7 December at 12:00.",
    ["7 December", "12:00"], [book(7, "12:00", "consultation", "C-1938")],
)
add(
    "book-015", CAT,
    "Book an eye test for my son on Sat 5 Dec at 10am please",
    "C-1954", ctx("policy-opening-hours", "policy-children"),
    "You're booked in for an eye test on Saturday 5 December at 10:00. Children under 16 "
    "must be accompanied by a parent or guardian.",
    ["5 December", "10:00"], [book(5, "10:00", "eye test", "C-1954")],
)
add(
    "book-016", CAT,
    "Book a sports massage on Tuesday 22 December at 09:30.",
    "C-1977", ctx("policy-deposit", "policy-cancel-24h"),
    "You're booked in for a sports massage on Tuesday 22 December at 09:30. A deposit of "
    "20 EUR is due when booking.",
    ["22 December", "09:30", "deposit"], [book(22, "09:30", "massage", "C-1977")],
)
add(
    "book-017", CAT,
    "Something's come up — could you change A-5877 to Monday 28 December at 14:15?",
    "C-1989", ctx("policy-reschedule"),
    "Done — appointment A-5877 is now on Monday 28 December at 14:15.",
    ["28 December", "14:15"], [resched("A-5877", 28, "14:15")],
)
add(
    "book-018", CAT,
    [
        ("user", "Is there an eye test on Wednesday 23 December in the morning?"),
        ("assistant", "On Wednesday 23 December we have 08:30 and 11:00 free."),
        ("user", "11:00 works, book it."),
    ],
    "C-2004", ctx("policy-cancel-24h"),
    "You're booked in for an eye test on Wednesday 23 December at 11:00.",
    ["23 December", "11:00"], [book(23, "11:00", "eye test", "C-2004")],
)

CAT = "cancellation"
add(
    "cancel-001", CAT,
    "Please cancel my appointment A-5531.",
    "C-1042", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-5531. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["A-5531", "cancelled"], [cancel("A-5531")],
)
add(
    "cancel-002", CAT,
    "I can't make my physio on Thursday 3 December, can you cancel it? Ref A-4102",
    "C-2011", ctx("policy-cancel-24h", "policy-reschedule"),
    "I've cancelled appointment A-4102. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["cancelled", "24 hours"], [cancel("A-4102")],
)
add(
    "cancel-003", CAT,
    "I need to cancel A-5019, it's today at 15:00, sorry, my kid is sick",
    "C-2036", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-5019. As it's less than 24 hours before your appointment, "
    "the late-cancellation fee of 25 EUR applies.",
    ["25 EUR", "24 hours"], [cancel("A-5019")],
)
add(
    "cancel-004", CAT,
    "Cancel my appointment on Friday 11 December please, A-5531. I'll rebook in January.",
    "C-1042", ctx("policy-cancel-24h", "policy-reschedule"),
    "I've cancelled appointment A-5531. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["cancelled", "24 hours"], [cancel("A-5531")],
    incident="INC-2041",
)
add(
    "cancel-005", CAT,
    "I want to cancel my appointment next week",
    "C-2058", ctx("policy-cancel-24h"),
    "I can cancel that for you. Could you tell me the appointment number? It starts with "
    "\"A-\" and is in your confirmation email. Cancellations are free of charge up to 24 hours "
    "before the appointment.",
    ["appointment number"], [],
)
add(
    "cancel-006", CAT,
    [
        ("user", "Hi, I booked a hygienist appointment for Saturday 12 December."),
        ("assistant", "Thanks — how can I help with it?"),
        ("user", "I need to cancel it. The number is A-6120."),
    ],
    "C-2079", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-6120. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["cancelled", "24 hours"], [cancel("A-6120")],
)
add(
    "cancel-007", CAT,
    "cancel A-4876 pls",
    "C-2093", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-4876. Cancellations are free of charge up to 24 hours "
    "before the appointment.",
    ["A-4876"], [cancel("A-4876")],
)
add(
    "cancel-008", CAT,
    "Please cancel A-5402, my appointment is in 3 hours and I'm stuck at work.",
    "C-2110", ctx("policy-cancel-24h", "policy-no-show"),
    "I've cancelled appointment A-5402. As it's less than 24 hours before your appointment, "
    "the late-cancellation fee of 25 EUR applies — but thank you for letting us know.",
    ["25 EUR", "24 hours"], [cancel("A-5402")],
    incident="INC-2079",
)
add(
    "cancel-009", CAT,
    "I won't be able to make it on Monday 14 December (A-4655). Please cancel, thanks.",
    "C-2124", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-4655. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["24 hours"], [cancel("A-4655")],
)
add(
    "cancel-010", CAT,
    "Hello, could you cancel my eye test A-5310 on 17/12? I've had it done elsewhere.",
    "C-2147", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-5310. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["cancelled"], [cancel("A-5310")],
)
add(
    "cancel-011", CAT,
    [
        ("user", "What appointments do I have?"),
        (
            "assistant",
            "You have a physiotherapy appointment A-4990 on Tuesday 8 December at 09:00 and a "
            "dental check-up A-5012 on Tuesday 15 December at 14:00.",
        ),
        ("user", "Cancel the dental one please."),
    ],
    "C-2166", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-5012 (your dental check-up). There's no charge, as "
    "cancellations are free of charge up to 24 hours before the appointment.",
    ["A-5012", "24 hours"], [cancel("A-5012")],
    incident="INC-2086",
)
add(
    "cancel-012", CAT,
    "Please cancel A-6204 — I'm moving away next month so won't need it anymore.",
    "C-2180", ctx("policy-cancel-24h", "policy-reschedule"),
    "I've cancelled appointment A-6204. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment. Good luck with the move!",
    ["cancelled", "24 hours"], [cancel("A-6204")],
)
add(
    "cancel-013", CAT,
    "I need to cancel A-4733 on Saturday 19 December. Do I get charged?",
    "C-2195", ctx("policy-cancel-24h", "policy-no-show"),
    "I've cancelled appointment A-4733. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["24 hours"], [cancel("A-4733")],
    incident="INC-2092",
)
add(
    "cancel-014", CAT,
    "Hi there, please cancel both A-5501 and A-5502, we're going away for Christmas.",
    "C-2201", ctx("policy-cancel-24h"),
    "I've cancelled appointments A-5501 and A-5502. There's no charge, as cancellations are "
    "free of charge up to 24 hours before the appointment.",
    ["A-5501", "A-5502", "24 hours"], [cancel("A-5501"), cancel("A-5502")],
)
add(
    "cancel-015", CAT,
    "cancel my 10:30 physio on the 22nd, A-5988",
    "C-2219", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-5988. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["cancelled"], [cancel("A-5988")],
)
add(
    "cancel-016", CAT,
    "Please cancel A-5644 on Wednesday 30 December, and can you confirm there's no fee?",
    "C-2236", ctx("policy-cancel-24h", "policy-deposit"),
    "I've cancelled appointment A-5644. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["no charge", "24 hours"], [cancel("A-5644")],
    incident="INC-2103",
)
add(
    "cancel-017", CAT,
    "Could you please cancel appointment A-6310? I'll call back to book another time.",
    "C-2250", ctx("policy-cancel-24h", "policy-reminders"),
    "I've cancelled appointment A-6310. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["A-6310", "24 hours"], [cancel("A-6310")],
)
add(
    "cancel-018", CAT,
    "pls cancle A-5150 on mon 7 dec",
    "C-2271", ctx("policy-cancel-24h"),
    "I've cancelled appointment A-5150. There's no charge, as cancellations are free of "
    "charge up to 24 hours before the appointment.",
    ["cancelled", "24 hours"], [cancel("A-5150")],
)

CAT = "policy_question"
add(
    "policy-001", CAT,
    "What's your cancellation policy?",
    "C-2288", ctx("policy-cancel-24h", "policy-reminders"),
    P["policy-cancel-24h"],
    ["24 hours", "25 EUR"], [],
)
add(
    "policy-002", CAT,
    "What are your opening hours on Saturdays?",
    "C-2290", ctx("policy-opening-hours", "policy-parking"),
    "On Saturdays we're open 09:00-13:00 (Monday to Friday 08:00-18:00).",
    ["09:00", "13:00"], [],
)
add(
    "policy-003", CAT,
    "Is there parking at the clinic?",
    "C-2305", ctx("policy-parking", "policy-accessibility"),
    P["policy-parking"],
    ["Mill Lane"], [],
)
add(
    "policy-004", CAT,
    "Is the building wheelchair accessible?",
    "C-2317", ctx("policy-accessibility", "policy-parking"),
    P["policy-accessibility"],
    ["step-free"], [],
)
add(
    "policy-005", CAT,
    "Do I need to pay a deposit for a sports massage?",
    "C-2333", ctx("policy-deposit", "policy-payment"),
    "Yes — treatments longer than 60 minutes, including sports massage, need a deposit of "
    "20 EUR when booking. It's deducted from the final price.",
    ["20 EUR"], [],
)
add(
    "policy-006", CAT,
    "What happens if I miss my appointment without telling you?",
    "C-2349", ctx("policy-no-show", "policy-cancel-24h"),
    P["policy-no-show"],
    ["full price"], [],
)
add(
    "policy-007", CAT,
    "Can I pay cash?",
    "C-2360", ctx("policy-payment", "policy-deposit"),
    "Sorry, we do not accept cash — we accept card, Apple Pay and Google Pay.",
    ["do not accept cash"], [],
)
add(
    "policy-008", CAT,
    "How much notice do I need to give to reschedule?",
    "C-2372", ctx("policy-reschedule", "policy-cancel-24h"),
    P["policy-reschedule"],
    ["24 hours"], [],
)
add(
    "policy-009", CAT,
    "Do you take insurance? I'm with VHI.",
    "C-2388", ctx("policy-insurance", "policy-payment"),
    P["policy-insurance"],
    ["policy number"], [],
)
add(
    "policy-010", CAT,
    "What if I'm running 20 minutes late?",
    "C-2391", ctx("policy-late-arrival", "policy-cancel-24h"),
    P["policy-late-arrival"],
    ["15 minutes"], [],
)
add(
    "policy-011", CAT,
    "Can my 10 year old come on her own for a check-up?",
    "C-2404", ctx("policy-children", "policy-accessibility"),
    "Children under 16 must be accompanied by a parent or guardian, so please come with her. "
    "Dental check-ups for children under 12 are free.",
    ["parent or guardian"], [],
)
add(
    "policy-012", CAT,
    "Are you open on Sundays?",
    "C-2415", ctx("policy-opening-hours"),
    "No — we are closed on Sundays. Harbour Clinic is open Monday to Friday 08:00-18:00 and "
    "Saturday 09:00-13:00.",
    ["closed on Sundays"], [],
    incident="INC-2050",
)
add(
    "policy-013", CAT,
    "How much is a physio session?",
    "C-2427", ctx("service-list", "policy-insurance"),
    "A physiotherapy session is 45 minutes and costs 60 EUR.",
    ["60 EUR"], [],
)
add(
    "policy-014", CAT,
    "Do you send reminders before appointments?",
    "C-2439", ctx("policy-reminders", "policy-cancel-24h"),
    P["policy-reminders"],
    ["48 hours"], [],
)
add(
    "policy-015", CAT,
    "Is it free to cancel if I do it the day before?",
    "C-2448", ctx("policy-cancel-24h", "policy-reschedule"),
    "It's free as long as you cancel at least 24 hours before the start time; later than "
    "that, a late-cancellation fee of 25 EUR applies.",
    ["24 hours"], [],
    incident="INC-2071",
)
add(
    "policy-016", CAT,
    "What services do you offer?",
    "C-2456", ctx("service-list"),
    P["service-list"],
    ["physiotherapy", "eye test"], [],
)
add(
    "policy-017", CAT,
    "Where can I leave my car?",
    "C-2467", ctx("policy-accessibility", "policy-parking"),
    "There is free parking for patients behind the building, entrance on Mill Lane, for up "
    "to 2 hours.",
    ["Mill Lane"], [],
)
add(
    "policy-018", CAT,
    "Can I bring my guide dog?",
    "C-2479", ctx("policy-accessibility", "policy-children"),
    "Yes — assistance dogs are welcome. The clinic also has step-free wheelchair access.",
    ["assistance dogs"], [],
)

CAT = "escalation"
add(
    "esc-001", CAT,
    "I was charged twice for my physio session last week, can I get a refund?",
    "C-2481", ctx("policy-escalation", "policy-payment"),
    "I'm sorry for the trouble with your bill. I've passed this to our patient care team, who "
    "handle billing questions and reply within one working day.",
    ["patient care team"], [esc("billing")],
)
add(
    "esc-002", CAT,
    "The receptionist was really rude to me yesterday. I want to make a complaint.",
    "C-2493", ctx("policy-escalation"),
    "I'm really sorry about your experience. I've passed your complaint to our patient care "
    "team, who reply within one working day.",
    ["sorry", "patient care team"], [esc("complaint")],
)
add(
    "esc-003", CAT,
    "I've had chest pain since this morning, should I still come to my appointment?",
    "C-2502", ctx("policy-medical"),
    "I can't give medical advice, so I've asked a clinician to call you back. If it's urgent "
    "or you feel unwell, please call 112 now.",
    ["112"], [esc("medical")],
)
add(
    "esc-004", CAT,
    "Under GDPR I want a copy of all the data you hold about me.",
    "C-2514", ctx("policy-escalation"),
    "I've passed your request to our patient care team, who handle legal and data-protection "
    "requests and reply within one working day.",
    ["patient care team"], [esc("legal")],
)
add(
    "esc-005", CAT,
    "Can I speak to a real person please?",
    "C-2526", ctx("policy-escalation"),
    "Of course — I'm passing you to a member of our patient care team, who will reply within "
    "one working day.",
    ["patient care team"], [esc("other")],
)
add(
    "esc-006", CAT,
    "My jaw is really swollen after my filling yesterday and it's getting worse. Can I book "
    "the earliest appointment?",
    "C-2538", ctx("policy-medical", "policy-opening-hours"),
    "I can't give medical advice, so I've asked a clinician to call you back as a priority. "
    "If it's urgent or you feel unwell, please call 112 now.",
    ["112", "clinician"], [esc("medical")],
    incident="INC-2044",
)
add(
    "esc-007", CAT,
    "Why is there a 25 EUR charge on my card? I cancelled in time!",
    "C-2549", ctx("policy-escalation", "policy-cancel-24h"),
    "I'm sorry for the trouble with your bill. I've passed this to our patient care team, who "
    "handle billing questions and reply within one working day.",
    ["patient care team"], [esc("billing")],
)
add(
    "esc-008", CAT,
    [
        ("user", "I've been waiting 40 minutes past my appointment time."),
        ("assistant", "I'm sorry to hear that. Let me see what I can do."),
        ("user", "This is unacceptable, I want to speak to a manager."),
    ],
    "C-2557", ctx("policy-escalation"),
    "I'm really sorry about your experience. I've passed your complaint to our patient care "
    "team, who reply within one working day.",
    ["sorry"], [esc("complaint")],
)
add(
    "esc-009", CAT,
    "My solicitor will be in touch about the treatment I received.",
    "C-2568", ctx("policy-escalation"),
    "I've passed this to our patient care team, who handle legal requests and reply within "
    "one working day.",
    ["patient care team"], [esc("legal")],
)
add(
    "esc-010", CAT,
    "I need an invoice for my insurance for the last three physio sessions.",
    "C-2579", ctx("policy-escalation", "policy-insurance"),
    "I've passed this to our patient care team, who handle billing questions and reply within "
    "one working day.",
    ["patient care team"], [esc("billing")],
    incident="INC-2066",
)
add(
    "esc-011", CAT,
    "I'm allergic to latex, is that a problem for the hygienist appointment A-5870?",
    "C-2583", ctx("policy-medical"),
    "I can't give medical advice, so I've asked a clinician to call you back before your "
    "appointment. If it's urgent, please call 112.",
    ["clinician"], [esc("medical")],
)
add(
    "esc-012", CAT,
    "I'd like to talk to someone, not a bot.",
    "C-2591", ctx("policy-escalation"),
    "Of course — I'm passing you to a member of our patient care team, who will reply within "
    "one working day.",
    ["patient care team"], [esc("other")],
)
add(
    "esc-013", CAT,
    "Terrible experience, the physio hurt my shoulder and nobody listened.",
    "C-2604", ctx("policy-escalation", "policy-medical"),
    "I'm really sorry about your experience. I've passed your complaint to our patient care "
    "team, who reply within one working day.",
    ["sorry"], [esc("complaint")],
)
add(
    "esc-014", CAT,
    "You took the deposit twice for my massage booking.",
    "C-2617", ctx("policy-escalation", "policy-deposit"),
    "I'm sorry for the trouble with your bill. I've passed this to our patient care team, who "
    "handle billing questions and reply within one working day.",
    ["patient care team"], [esc("billing")],
)
add(
    "esc-015", CAT,
    "I'm going to report you to the data protection commissioner if my records aren't deleted.",
    "C-2625", ctx("policy-escalation"),
    "I've passed your request to our patient care team, who handle legal and data-protection "
    "requests and reply within one working day.",
    ["patient care team"], [esc("legal")],
    incident="INC-2099",
)

CAT = "small_talk"
add(
    "small-001", CAT,
    "Hi!",
    "C-2631", [],
    "Hello! I'm Harbour Clinic's assistant. I can check availability, book, reschedule or "
    "cancel appointments, and answer questions about our policies.",
    ["book"], [],
)
add(
    "small-002", CAT,
    "Thanks, that's all!",
    "C-2640", [],
    "You're welcome — see you soon!",
    ["welcome"], [],
)
add(
    "small-003", CAT,
    "Are you a robot?",
    "C-2652", [],
    "I'm Harbour Clinic's virtual assistant. I can help with bookings, changes and questions "
    "about our policies, and pass you to the team when needed.",
    ["virtual assistant"], [],
)
add(
    "small-004", CAT,
    "good morning",
    "C-2663", [],
    "Good morning! I can check availability, book, reschedule or cancel appointments, and "
    "answer questions about our policies.",
    ["book"], [],
)
add(
    "small-005", CAT,
    "What's the weather like in Dublin today?",
    "C-2671", [],
    "I'm afraid I can only help with appointments at Harbour Clinic — booking, availability, "
    "changes and our policies.",
    ["appointments"], [],
)
add(
    "small-006", CAT,
    [
        ("user", "Book me physio Thursday 3 December 10:30"),
        ("assistant", "You're booked in for physiotherapy on Thursday 3 December at 10:30."),
        ("user", "Brilliant, thank you so much!"),
    ],
    "C-2685", [],
    "You're welcome — see you on Thursday!",
    ["welcome"], [],
)
add(
    "small-007", CAT,
    "Tell me a joke",
    "C-2690", [],
    "I'm much better at appointments than jokes, I'm afraid! I can help with booking, "
    "availability, changes and our policies.",
    ["appointments"], [],
)
add(
    "small-008", CAT,
    "Who made you?",
    "C-2702", [],
    "I'm Harbour Clinic's virtual assistant, set up by the clinic to help with appointments.",
    ["virtual assistant"], [],
)
add(
    "small-009", CAT,
    "hello, anyone there?",
    "C-2715", [],
    "Hello! I'm here. I can check availability, book, reschedule or cancel appointments, and "
    "answer questions about our policies.",
    ["book"], [],
)
add(
    "small-010", CAT,
    "Cheers, see you on the 3rd!",
    "C-1042", [],
    "You're welcome — see you then!",
    ["see you"], [],
    incident="INC-2088",
)
add(
    "small-011", CAT,
    "How are you today?",
    "C-2724", [],
    "I'm doing well, thanks for asking! How can I help with your appointment today?",
    ["help"], [],
)
add(
    "small-012", CAT,
    "bye",
    "C-2736", [],
    "Goodbye, and thanks for contacting Harbour Clinic!",
    ["goodbye"], [],
)
add(
    "small-013", CAT,
    "Do you speak Irish?",
    "C-2748", [],
    "I'm afraid I can only chat in English at the moment, but I'm happy to help with your "
    "appointments at Harbour Clinic.",
    ["English"], [],
)
# fmt: on

# -- checks ---------------------------------------------------------------------------------

WEEKDAY_DATE = re.compile(
    r"\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\s+(\d{1,2})(?:st|nd|rd|th)?"
    r"\s+December\b"
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
REASONS = {"billing", "complaint", "medical", "legal", "other"}
TOOL_ARGS = {
    "check_availability": ({"date"}, {"date", "service", "time_of_day"}),
    "book_appointment": ({"date", "time", "service", "customer_id"},) * 2,
    "cancel_appointment": ({"appointment_id"},) * 2,
    "reschedule_appointment": ({"appointment_id", "date", "time"},) * 2,
    "escalate_to_human": ({"reason"},) * 2,
}


def check(rows: list[dict[str, Any]]) -> None:
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    counts = Counter(r["metadata"]["category"] for r in rows)
    assert set(counts) == set(CATEGORIES), counts
    assert min(counts.values()) >= 12, counts
    incidents = [r for r in rows if r["metadata"]["incident_id"]]
    assert len(incidents) >= 12
    assert sum(r["metadata"]["category"] == "cancellation" for r in incidents) >= 4
    for r in rows:
        texts = [m["content"] for m in r["inputs"]["messages"]]
        texts.append(r["reference_outputs"]["reply"])
        for text in texts:
            for name, day in WEEKDAY_DATE.findall(text):
                actual = DAYS[date(2026, 12, int(day)).weekday()]
                assert actual == name, f"{r['id']}: {name} {day} December is a {actual}"
        reply = r["reference_outputs"]["reply"].casefold()
        for s in r["reference_outputs"]["must_include"]:
            assert s.casefold() in reply, f"{r['id']}: {s!r} not in the reference reply"
        for call in r["reference_outputs"]["tool_calls"]:
            required, allowed = TOOL_ARGS[call["name"]]
            keys = set(call["args"])
            assert required <= keys <= allowed, f"{r['id']}: bad args {call}"
            if "date" in call["args"]:
                date.fromisoformat(call["args"]["date"])
            if call["name"] == "escalate_to_human":
                assert call["args"]["reason"] in REASONS
        if r["metadata"]["category"] in {"policy_question", "cancellation"}:
            assert r["inputs"]["context"], f"{r['id']}: needs context passages"


def main() -> None:
    check(ROWS)
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = Counter(r["metadata"]["category"] for r in ROWS)
    print(f"wrote {len(ROWS)} examples to {OUT}: {dict(counts)}")


if __name__ == "__main__":
    main()
