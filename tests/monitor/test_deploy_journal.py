"""The deploy journal: what a 202 made durable survives a crash of the app before the
window reached the warehouse, is stored once, and a torn last line is skipped."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import httpx

from evalkeeper.http.app import create_app
from evalkeeper.monitor.journal import DeployJournal, journal_dir, read_segment, replay
from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, new_window
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.monitor.test_monitor_webhooks import body, signed
from tests.otlp_helpers import Collected, serve

DEPLOY = datetime(2026, 11, 30, 12, tzinfo=UTC)


def stored(settings: Settings) -> list[tuple[str, str]]:
    return Warehouse.from_settings(settings).rows(
        "SELECT window_id, deploy_id FROM monitoring_windows ORDER BY deploy_id"
    )


def crashed_app(settings: Settings, deploys: list[str]) -> list[str]:
    """Journal deploys as the app does before its 202, then die: nothing applied."""
    windows = [
        new_window(
            settings,
            DeployEvent(service="scheduler", version="v2", deploy_id=d, time=DEPLOY),
            "webhook",
        )
        for d in deploys
    ]
    journal = DeployJournal(settings)
    journal.append([(w, f"standard:msg-{w.deploy_id}") for w in windows])
    segment = journal.rotate()  # the process is gone: its lock with it
    assert segment is not None
    with segment.open("ab") as fh:  # a crash in the middle of the next append
        fh.write(b'{"window": {"window_id": "win-torn"')
    return [w.window_id for w in windows]


def test_a_restarted_app_stores_what_the_crashed_one_journaled(mon_settings: Settings) -> None:
    ids = crashed_app(mon_settings, ["d-1", "d-2"])
    assert stored(mon_settings) == []
    app = create_app(mon_settings, trace_sink=Collected(), emitter=None, first_tick=False)
    with serve(app) as url:
        assert stored(mon_settings) == [(ids[0], "d-1"), (ids[1], "d-2")]
        # the recovered delivery and deploy are known: a redelivery opens nothing new
        raw = body("d-1", service="scheduler", environment=None, previous_version=None)
        again = httpx.post(f"{url}/hooks/deploy", content=raw, headers=signed(raw, "msg-d-1"))
        assert again.status_code == 202 and again.json()["created"] is False
        assert again.json()["window_id"] == ids[0]
    assert len(stored(mon_settings)) == 2
    assert list(journal_dir(mon_settings).glob("*.jsonl")) == []  # applied, then removed


def test_a_tick_applies_the_journal_first(mon_settings: Settings) -> None:
    import asyncio

    ids = crashed_app(mon_settings, ["d-9"])
    summary = asyncio.run(
        tick(
            mon_settings.model_copy(
                update={"monitor": mon_settings.monitor.model_copy(update={"traces": None})}
            ),
            now=DEPLOY,
        )
    )
    assert [w.window_id for w in summary.windows] == ids
    assert stored(mon_settings) == [(ids[0], "d-9")]
    assert replay(mon_settings) == []  # nothing left: applying again changes nothing


def test_a_segment_being_written_is_applied_but_kept(mon_settings: Settings) -> None:
    window = new_window(
        mon_settings,
        DeployEvent(service="scheduler", version="v3", deploy_id="live", time=DEPLOY),
        "webhook",
    )
    journal = DeployJournal(mon_settings)
    journal.append([(window, None)])
    (segment,) = journal_dir(mon_settings).glob("*.jsonl")
    opened = replay(mon_settings)
    assert [o.created for o in opened] == [True]
    assert segment.exists()  # its writer holds it: only the writer removes it
    assert [w.window_id for w, _ in read_segment(segment)] == [window.window_id]
    journal.append([(window, None)])  # a second line: applying it again opens nothing new
    assert [o.created for o in replay(mon_settings)] == [False, False]
    journal.close()
    assert replay(mon_settings) and not segment.exists()


def test_a_damaged_line_before_the_end_is_reported(mon_settings: Settings) -> None:
    directory = journal_dir(mon_settings)
    directory.mkdir(parents=True)
    bad = directory / "00000000000000000001-1.jsonl"
    bad.write_text("not json\n" + json.dumps({"window": {}, "delivery_id": None}) + "\n")
    try:
        read_segment(bad)
    except ValueError as exc:
        assert f"{bad}:1" in str(exc) and "monitor start" in str(exc)
    else:
        raise AssertionError("a damaged journal line was not reported")


def test_a_rotation_during_writes_loses_no_entry(mon_settings: Settings) -> None:
    """The intake writes in a worker thread while its applier rotates the segment on the
    event loop: a rotation in the middle of a write closed the file under its fsync
    (AttributeError: 'NoneType' object has no attribute 'fileno'). Every entry written is
    in exactly one of the segments the rotations returned."""
    windows = [
        new_window(
            mon_settings,
            DeployEvent(service="scheduler", version=f"v{i}", deploy_id=f"d{i}", time=DEPLOY),
            "webhook",
        )
        for i in range(150)
    ]
    journal = DeployJournal(mon_settings)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for w in windows:
                journal.append([(w, None)])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    segments = []
    while thread.is_alive():
        segment = journal.rotate()
        if segment is not None:
            segments.append(segment)
    thread.join()
    last = journal.rotate()
    segments += [last] if last is not None else []
    assert errors == []
    found = [w.window_id for s in segments for w, _ in read_segment(s)]
    assert sorted(found) == sorted(w.window_id for w in windows)
    assert len(segments) > 1  # rotations did happen between writes
