"""Concurrent reviewers: threads and processes writing at once lose nothing and double nothing.

The soak test runs for ``$BLOODCELL_SOAK_SECONDS`` (default 60) per backend; the rest is quick.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime


import pytest
import sqlalchemy as sa

from bloodcell_core.paths import PROJECT_ROOT
from bloodcell_core.review import store as store_module
from bloodcell_core.review.auth import guarded_record
from bloodcell_core.review.store import (ACTIONS, BUSY_MESSAGE, Decision, ReviewStore, ReviewStoreBusy,
                                         ReviewStoreError, make_request_id)

SOAK_SECONDS = float(os.environ.get("BLOODCELL_SOAK_SECONDS", "60"))
REQUIRED_COLUMNS = ("image_hash", "dataset", "path", "action", "reviewer", "note", "created_at")


def reviewer_decision(reviewer: str, index: int, request_id: str | None) -> Decision:
    action = ACTIONS[index % len(ACTIONS)]
    return Decision(image_hash=f"img-{index % 97}", dataset="pbc", path=f"pbc/img-{index % 97}.jpg", action=action,
                    old_label="ig", new_label="monocyte", reviewer=reviewer, note=f"{reviewer} #{index}",
                    request_id=request_id)


def run_threads(count: int, target) -> list[BaseException]:
    """Run ``target(thread_index)`` in ``count`` threads released together; return their exceptions."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def guarded(thread_index: int) -> None:
        try:
            start.wait()
            target(thread_index)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def assert_rows_complete(store: ReviewStore) -> None:
    history = store.history()
    assert len(history) == store.count()
    for column in ("image_hash", "dataset", "path", "action", "reviewer", "note", "time"):
        assert history[column].notna().all(), column
    assert set(history["action"]) <= set(ACTIONS)
    assert history["id"].is_unique


def test_8_threads_x_250_decisions_give_exactly_2000_rows(review_store):
    per_thread = 250

    def write(thread_index: int) -> None:
        reviewer = f"reviewer-{thread_index}"
        for index in range(per_thread):
            assert review_store.record(reviewer_decision(reviewer, index, make_request_id("threads", reviewer, index)))

    started = time.perf_counter()
    assert run_threads(8, write) == []
    elapsed = time.perf_counter() - started
    print(f"\n{review_store.url.get_backend_name()}: 2000 decisions from 8 threads in {elapsed:.1f} s")

    assert review_store.count() == 2000
    assert_rows_complete(review_store)
    history = review_store.history()
    assert history["request_id"].nunique() == 2000
    assert Counter(history["reviewer"]) == {f"reviewer-{i}": per_thread for i in range(8)}
    for reviewer, rows in history.groupby("reviewer"):  # each thread's writes land in its own order
        notes = list(rows.sort_values("id")["note"])
        assert notes == [f"{reviewer} #{i}" for i in range(per_thread)]


def test_16_reviewers_soak_keeps_every_acknowledged_decision_once(review_store):
    deadline = time.monotonic() + SOAK_SECONDS
    acknowledged: dict[int, list[str]] = {}
    double_acks: list[str] = []
    shared_wins: Counter[str] = Counter()
    shared_lock = threading.Lock()

    def review(thread_index: int) -> None:
        reviewer = f"reviewer-{thread_index:02d}"
        mine = acknowledged.setdefault(thread_index, [])
        index = 0
        while time.monotonic() < deadline:
            request_id = make_request_id("soak", reviewer, index)
            if review_store.record(reviewer_decision(reviewer, index, request_id)):
                mine.append(request_id)
            if index % 5 == 0 and review_store.record(reviewer_decision(reviewer, index, request_id)):
                double_acks.append(request_id)  # a rerun of the same click must not count twice
            shared_id = make_request_id("shared-click", index)  # every reviewer races for the same id
            if review_store.record(reviewer_decision(reviewer, index, shared_id)):
                with shared_lock:
                    shared_wins[shared_id] += 1
            if index % 25 == 0:
                review_store.latest(dataset="pbc")  # pages read while others write
            index += 1

    started = time.perf_counter()
    assert run_threads(16, review) == []
    elapsed = time.perf_counter() - started

    all_acknowledged = [rid for ids in acknowledged.values() for rid in ids]
    stored = Counter(review_store.history()["request_id"])
    print(f"\n{review_store.url.get_backend_name()}: {review_store.count()} decisions from 16 reviewers "
          f"in {elapsed:.0f} s ({review_store.count() / elapsed:.0f}/s)")
    assert len(all_acknowledged) >= 16, "the soak wrote almost nothing"
    assert double_acks == []
    assert all(stored[rid] == 1 for rid in all_acknowledged), "an acknowledged decision is missing or doubled"
    assert max(shared_wins.values()) == 1, "two reviewers both won the same request id"
    assert all(stored[rid] == 1 for rid in shared_wins)
    assert review_store.count() == len(all_acknowledged) + len(shared_wins) == sum(stored.values())
    assert_rows_complete(review_store)


SHARED_SOAK_SECONDS = 8.0  # per pool setting and backend: the whole test stays well under 30 s


def soak_shared_store(store: ReviewStore, seconds: float) -> tuple[set[str], set[str], list[BaseException]]:
    """16 reviewers share ``store`` through :func:`guarded_record` for ``seconds``.

    Returns (acknowledged request ids, request ids whose write raised ReviewStoreError, every other
    exception).  A ReviewStoreError is what a page shows as one line; anything else would be a crash.
    """
    deadline = time.monotonic() + seconds
    acknowledged: set[str] = set()
    refused: set[str] = set()
    lock = threading.Lock()

    def review(thread_index: int) -> None:
        reviewer, index = f"reviewer-{thread_index:02d}", 0
        while time.monotonic() < deadline:
            for request_id in (make_request_id("shared-soak", reviewer, index), make_request_id("race", index)):
                try:
                    written = guarded_record(store, reviewer_decision(reviewer, index, request_id), reviewer)
                    if index % 10 == 0:
                        store.latest(dataset="pbc")  # pages read while others write
                except ReviewStoreError:
                    with lock:
                        refused.add(request_id)
                    continue
                if written:
                    with lock:
                        assert request_id not in acknowledged, "one request id acknowledged twice"
                        acknowledged.add(request_id)
            index += 1

    return acknowledged, refused, run_threads(16, review)


@pytest.mark.parametrize("pool", ["app-sized", "starved"])
def test_16_threads_sharing_one_store_crash_nothing_and_lose_nothing(review_store_url, pool, monkeypatch):
    """The app's pool never makes 16 writers wait; a starved pool answers "busy" (a ReviewStoreError)
    instead of SQLAlchemy's TimeoutError, and in both cases no row is lost or doubled."""
    if pool == "starved":
        monkeypatch.setattr(store_module, "POOL_SIZE", 2)
        monkeypatch.setattr(store_module, "POOL_MAX_OVERFLOW", 0)
        monkeypatch.setattr(store_module, "POOL_TIMEOUT_S", 0.02)
    with ReviewStore(review_store_url) as store:
        acknowledged, refused, crashes = soak_shared_store(store, SHARED_SOAK_SECONDS)
        stored = Counter(store.history()["request_id"])
        assert_rows_complete(store)
    print(f"\n{pool} pool: {len(acknowledged)} written, {len(refused)} refused as busy")
    assert crashes == [], crashes[:3]
    assert len(acknowledged) >= 16, "the soak wrote almost nothing"
    assert all(count == 1 for count in stored.values()), "a decision was stored twice"
    assert acknowledged <= set(stored), "an acknowledged decision is missing"
    assert set(stored) <= acknowledged | refused, "a row nobody asked for"
    if pool == "app-sized":
        assert not refused, "16 threads should never wait for the app-sized pool"


def test_a_busy_pool_is_a_one_line_store_error(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "POOL_SIZE", 1)
    monkeypatch.setattr(store_module, "POOL_MAX_OVERFLOW", 0)
    monkeypatch.setattr(store_module, "POOL_TIMEOUT_S", 0.05)
    decision = reviewer_decision("alice", 0, "rid-1")
    with ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}") as store:
        held = store._engine.connect()  # noqa: SLF001 - another thread's connection, held
        with pytest.raises(ReviewStoreBusy) as busy:
            guarded_record(store, decision, "alice")
        assert str(busy.value).startswith(BUSY_MESSAGE) and "\n" not in str(busy.value)
        with pytest.raises(ReviewStoreBusy):
            store.history()
        held.close()
        assert guarded_record(store, decision, "alice") and store.count() == 1


def test_any_sqlalchemy_error_becomes_a_store_error(tmp_path, monkeypatch):
    with ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}") as store:
        def broken_connect() -> None:
            raise sa.exc.InvalidRequestError("something SQLAlchemy-level went wrong\nwith detail")

        monkeypatch.setattr(store._engine, "connect", broken_connect)  # noqa: SLF001
        with pytest.raises(ReviewStoreError, match="something SQLAlchemy-level went wrong") as caught:
            store.record(reviewer_decision("alice", 0, None))
        assert "\n" not in str(caught.value) and not isinstance(caught.value, ReviewStoreBusy)


WRITER_SCRIPT = """
import sys
from bloodcell_core.review.store import Decision, ReviewStore, make_request_id
store = ReviewStore()
worker, count, note_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
index = 0
while count < 0 or index < count:
    for scope in (worker, "shared"):   # own decisions, then one every worker races for
        request_id = make_request_id("process", scope, index)
        decision = Decision(image_hash=f"img-{index % 89}", dataset="pbc", path="p.jpg", action="keep",
                            old_label=None, new_label=None, reviewer=worker, note="x" * note_size,
                            request_id=request_id)
        if store.record(decision):
            print(request_id, flush=True)
    index += 1
"""


def start_writer(url: str, worker: str, count: int, note_size: int = 0) -> subprocess.Popen:
    """A separate Python process recording decisions; prints each acknowledged request id."""
    env = {**os.environ, "BLOODCELL_DB_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, worker, str(count), str(note_size)],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)


def test_processes_writing_at_once_neither_lose_nor_double(review_store_url):
    writers = [start_writer(review_store_url, f"process-{i}", 100) for i in range(4)]
    acknowledged: list[str] = []
    for writer in writers:
        output, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0
        acknowledged += output.split()

    with ReviewStore(review_store_url) as store:
        stored = Counter(store.history()["request_id"])
        assert store.count() == 4 * 100 + 100  # 100 own each, each shared id won by exactly one process
        assert_rows_complete(store)
    assert Counter(acknowledged) == stored


def read_acknowledgements(writer: subprocess.Popen, wanted: int, timeout_s: float = 120) -> list[str]:
    acknowledged: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(acknowledged) < wanted and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    return acknowledged


def test_a_writer_killed_mid_write_leaves_a_consistent_database(tmp_path):
    path = tmp_path / "review.sqlite"
    url = f"sqlite:///{path}"
    ReviewStore(url).close()
    acknowledged: list[str] = []
    for round_index in range(3):  # three kills at random moments; large notes make writes take time
        writer = start_writer(url, f"victim-{round_index}", count=-1, note_size=50_000)
        acknowledged += read_acknowledgements(writer, wanted=random.randint(20, 60))
        os.kill(writer.pid, signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
        acknowledged += [line for line in rest.splitlines() if len(line) == 64]  # complete lines only
        assert writer.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = connection.execute(f"SELECT {', '.join(REQUIRED_COLUMNS)}, request_id FROM decisions").fetchall()
    assert len(rows) >= len(acknowledged) > 0
    for row in rows:
        assert all(value is not None for value in row[:len(REQUIRED_COLUMNS)])
        assert row[3] == "keep" and len(row[5]) == 50_000  # the note was written whole
        datetime.fromisoformat(row[6])
    assert set(acknowledged) <= {row[-1] for row in rows}, "a committed decision was lost"

    with ReviewStore(url) as store:  # the store reopens, reads everything, and still writes
        assert len(store.history()) == len(rows)
        assert store.record(reviewer_decision("after-crash", 0, None))
        assert store.count() == len(rows) + 1


OPENER_SCRIPT = """
import sys
from bloodcell_core.review.store import ReviewStore
ReviewStore(sys.argv[1]).close()
"""


def test_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    """App instances starting together race to create the schema of a brand-new SQLite file."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'new-{attempt}.sqlite'}"
        openers = [subprocess.Popen([sys.executable, "-c", OPENER_SCRIPT, url], cwd=PROJECT_ROOT, env=env,
                                    stderr=subprocess.PIPE, text=True) for _ in range(8)]
        failures = [opener.communicate(timeout=120)[1] for opener in openers if opener.wait(timeout=120) != 0]
        assert not failures, failures[0].strip().splitlines()[-1]
        with ReviewStore(url) as store:
            assert store.count() == 0
