"""The review store: validation, idempotent writes, latest/history, append-only, schema versions.

Every test taking ``review_store`` runs on SQLite and (with BLOODCELL_TEST_PG_URL) on PostgreSQL.
"""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from bloodcell_core.errors import BloodcellError
from bloodcell_core.review import store as store_module
from bloodcell_core.review.store import (
    ACTIONS,
    HISTORY_COLUMNS,
    SCHEMA_VERSION,
    Decision,
    ReviewStore,
    ReviewStoreError,
    default_database_url,
    make_request_id,
)


def decision(image_hash: str = "h1", action: str = "keep", reviewer: str = "alice", dataset: str = "pbc",
             new_label: str | None = None, **extra) -> Decision:
    return Decision(image_hash=image_hash, dataset=dataset, path=f"{dataset}/{image_hash}.jpg", action=action,
                    old_label="ig", new_label=new_label, reviewer=reviewer, **extra)


def test_record_stores_every_field_with_a_utc_time_set_by_the_store(review_store):
    before = datetime.now(timezone.utc)
    backdated = datetime(2001, 1, 1, tzinfo=timezone.utc)
    assert review_store.record(decision(action="relabel", new_label="monocyte", note="nucleus shape – ünïcode",
                                        time=backdated, request_id="r-1"))
    after = datetime.now(timezone.utc)

    stored = review_store.latest()["h1"]
    assert (stored.image_hash, stored.dataset, stored.path, stored.action) == ("h1", "pbc", "pbc/h1.jpg", "relabel")
    assert (stored.old_label, stored.new_label, stored.reviewer) == ("ig", "monocyte", "alice")
    assert stored.note == "nucleus shape – ünïcode"
    assert stored.request_id == "r-1"
    assert stored.time.tzinfo is not None
    assert before - timedelta(seconds=1) <= stored.time <= after + timedelta(seconds=1)  # not the backdated time
    assert review_store.count() == 1


def test_same_request_id_is_recorded_once(review_store):
    request_id = make_request_id("relabel-page", "alice", "h1", "relabel", "monocyte", "nonce-7")
    first = decision(action="relabel", new_label="monocyte", request_id=request_id)
    assert review_store.record(first) is True
    assert review_store.record(first) is False  # a Streamlit rerun of the same click
    assert review_store.record(decision(action="keep", request_id=request_id)) is False
    assert review_store.count() == 1
    assert review_store.latest()["h1"].action == "relabel"


def test_record_many_writes_a_batch_in_one_transaction_once(review_store):
    batch = [decision(image_hash=f"h{i}", action="confirm-prediction", new_label="ig", request_id=f"bulk-{i}")
             for i in range(50)]
    assert review_store.record_many(batch) == 50
    assert review_store.record_many(batch) == 0  # a rerun of the bulk click
    assert review_store.record_many([*batch[:2], decision(image_hash="new", request_id="bulk-new")]) == 1
    with pytest.raises(ReviewStoreError, match="unknown review action"):
        review_store.record_many([decision(image_hash="x", request_id="ok"), decision(action="nonsense")])
    assert review_store.count() == 51 and review_store.record_many([]) == 0


def test_decisions_without_request_id_are_all_kept(review_store):
    assert review_store.record(decision())
    assert review_store.record(decision())
    assert review_store.count() == 2


def test_make_request_id_is_deterministic_and_sensitive_to_every_part():
    base = make_request_id("page", "alice", "h1", "relabel", "monocyte", 3)
    assert base == make_request_id("page", "alice", "h1", "relabel", "monocyte", 3)
    assert len(base) == 64 and int(base, 16) >= 0
    variants = {make_request_id("page", "bob", "h1", "relabel", "monocyte", 3),
                make_request_id("page", "alice", "h1", "relabel", "monocyte", 4),
                make_request_id("page", "alice", "h1", "relabel", None, 3),
                make_request_id("page", "alice", "h1", "relabel", "None", 3),
                make_request_id("pagealice", "", "h1", "relabel", "monocyte", 3),
                make_request_id("alice", "page", "h1", "relabel", "monocyte", 3)}
    assert base not in variants and len(variants) == 6


@pytest.mark.parametrize(("bad", "message"), [
    (decision(action="approve"), "unknown review action"),
    (decision(reviewer=""), "reviewer"),
    (decision(reviewer="   "), "reviewer"),
    (decision(action="relabel", new_label=None), "new label"),
    (decision(action="correct-prediction", new_label=" "), "new label"),
    (decision(image_hash=""), "image hash"),
    (decision(dataset=""), "dataset"),
])
def test_invalid_decisions_are_refused_and_nothing_is_written(review_store, bad, message):
    with pytest.raises(ReviewStoreError, match=message):
        review_store.record(bad)
    assert review_store.count() == 0


def test_every_action_is_accepted(review_store):
    for index, action in enumerate(ACTIONS):
        assert review_store.record(decision(image_hash=f"h{index}", action=action, new_label="monocyte"))
    assert {d.action for d in review_store.latest().values()} == set(ACTIONS)


def test_latest_is_the_last_recorded_decision_per_image(review_store):
    review_store.record(decision("h1", "relabel", "alice", new_label="monocyte"))
    review_store.record(decision("h2", "drop", "alice"))
    review_store.record(decision("h1", "keep", "bob"))
    review_store.record(decision("h3", "keep", "bob", dataset="other"))
    latest = review_store.latest()
    assert set(latest) == {"h1", "h2", "h3"}
    assert (latest["h1"].action, latest["h1"].reviewer) == ("keep", "bob")
    assert latest["h2"].action == "drop"
    assert set(review_store.latest(dataset="pbc")) == {"h1", "h2"}
    assert set(review_store.latest(dataset="other")) == {"h3"}
    assert review_store.latest(dataset="missing") == {}


def test_history_is_newest_first_and_filters(review_store):
    review_store.record(decision("h1", "relabel", "alice", new_label="monocyte"))
    review_store.record(decision("h2", "drop", "bob"))
    review_store.record(decision("h3", "keep", "alice", dataset="other"))

    history = review_store.history()
    assert list(history.columns) == HISTORY_COLUMNS
    assert list(history["image_hash"]) == ["h3", "h2", "h1"]
    assert history["id"].is_monotonic_decreasing
    assert str(history["time"].dt.tz) == "UTC"
    assert list(review_store.history(reviewer="alice")["image_hash"]) == ["h3", "h1"]
    assert list(review_store.history(action="drop")["image_hash"]) == ["h2"]
    assert list(review_store.history(dataset="other")["image_hash"]) == ["h3"]
    assert len(review_store.history(since=datetime.now(timezone.utc) - timedelta(minutes=5))) == 3
    assert review_store.history(since=datetime.now(timezone.utc) + timedelta(minutes=5)).empty
    naive_utc_past = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=5)
    assert len(review_store.history(since=naive_utc_past)) == 3


def test_empty_history_has_the_columns(review_store):
    history = review_store.history()
    assert history.empty and list(history.columns) == HISTORY_COLUMNS
    assert review_store.to_csv().decode().strip() == ",".join(HISTORY_COLUMNS)


def test_csv_export_round_trips(review_store):
    review_store.record(decision("h1", "relabel", "alice", new_label="monocyte", note='says "hi", twice'))
    review_store.record(decision("h2", "drop", "bob"))
    exported = pd.read_csv(io.BytesIO(review_store.to_csv()))
    assert list(exported.columns) == HISTORY_COLUMNS
    assert list(exported["image_hash"]) == ["h2", "h1"]
    assert exported.loc[1, "note"] == 'says "hi", twice'
    assert list(pd.read_csv(io.BytesIO(review_store.to_csv(reviewer="bob")))["image_hash"]) == ["h2"]


def test_the_store_has_no_way_to_change_or_remove_decisions():
    public = {name for name in dir(ReviewStore) if not name.startswith("_")}
    assert public == {"record", "record_many", "latest", "history", "to_csv", "count", "schema_version", "close",
                      "archive", "archived"}  # the reviewed-cell archive: insert-once and read, nothing else


@pytest.mark.parametrize("statement", ["UPDATE decisions SET reviewer = 'mallory'", "DELETE FROM decisions"])
def test_the_database_refuses_to_rewrite_the_audit_trail(review_store, statement):
    review_store.record(decision())
    engine = sa.create_engine(review_store.url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()
    assert review_store.latest()["h1"].reviewer == "alice"
    assert review_store.count() == 1


def test_reopening_keeps_decisions_and_schema_version(review_store_url):
    with ReviewStore(review_store_url) as store:
        store.record(decision())
    with ReviewStore(review_store_url) as store:
        assert store.count() == 1
        assert store.schema_version() == SCHEMA_VERSION


def test_a_newer_schema_is_refused(review_store_url):
    with ReviewStore(review_store_url) as store:
        engine = sa.create_engine(store.url)
    with engine.begin() as connection:
        connection.execute(store_module.schema_version_table.insert().values(
            version=SCHEMA_VERSION + 1, applied_at=datetime.now(timezone.utc)))
    engine.dispose()
    with pytest.raises(ReviewStoreError, match="newer than this bloodcell_core"):
        ReviewStore(review_store_url)


def test_migrations_run_once_in_order(review_store_url, monkeypatch):
    ReviewStore(review_store_url).close()
    applied: list[int] = []
    following = SCHEMA_VERSION + 1

    def add_notes_table(connection) -> None:
        applied.append(following)
        connection.exec_driver_sql("CREATE TABLE reviewer_notes (id INTEGER PRIMARY KEY)")

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", following)
    monkeypatch.setattr(store_module, "MIGRATIONS", {**store_module.MIGRATIONS, following: add_notes_table})
    with ReviewStore(review_store_url) as store:
        assert store.schema_version() == following
        assert sa.inspect(sa.create_engine(store.url)).has_table("reviewer_notes")
    ReviewStore(review_store_url).close()
    assert applied == [following]


def test_a_version_1_database_gains_the_archive(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'v1.sqlite'}"
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    monkeypatch.setattr(store_module, "metadata", sa.MetaData())  # version 1 had no archived_images table
    store_module.decisions_table.to_metadata(store_module.metadata)
    store_module.schema_version_table.to_metadata(store_module.metadata)
    with ReviewStore(url) as store:
        store.record(decision())
        assert not sa.inspect(sa.create_engine(store.url)).has_table("archived_images")
    monkeypatch.undo()
    with ReviewStore(url) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.count() == 1
        assert sa.inspect(sa.create_engine(store.url)).has_table("archived_images")
        assert store.archived() == []


def test_a_missing_migration_is_refused(review_store_url, monkeypatch):
    ReviewStore(review_store_url).close()
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(ReviewStoreError, match="no migration"):
        ReviewStore(review_store_url)


def test_a_foreign_decisions_table_is_refused(tmp_path):
    path = tmp_path / "foreign.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE decisions (id INTEGER PRIMARY KEY, x TEXT)")
    engine.dispose()
    with pytest.raises(ReviewStoreError, match="not a bloodcell review database"):
        ReviewStore(f"sqlite:///{path}")


def test_a_file_that_is_not_a_database_gives_a_one_line_error(tmp_path):
    path = tmp_path / "review.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BloodcellError) as error:
        ReviewStore(f"sqlite:///{path}")
    assert "not a database" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", "not a database URL"),
    ("mysql://user@host/db", "unsupported review database"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
])
def test_bad_database_urls_are_refused(url, message):
    with pytest.raises(ReviewStoreError, match=message):
        ReviewStore(url)


def test_default_location_is_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    monkeypatch.delenv("BLOODCELL_DB", raising=False)
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "data"))
    with ReviewStore() as store:
        store.record(decision())
    assert (tmp_path / "data" / "review.sqlite").is_file()


def test_bloodcell_db_names_the_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    monkeypatch.setenv("BLOODCELL_DB", str(tmp_path / "sub" / "reviews.db"))
    with ReviewStore() as store:
        store.record(decision())
    assert (tmp_path / "sub" / "reviews.db").is_file()


def test_bloodcell_db_url_wins_and_defaults_to_psycopg(monkeypatch, tmp_path):
    monkeypatch.setenv("BLOODCELL_DB", str(tmp_path / "ignored.sqlite"))
    monkeypatch.setenv("BLOODCELL_DB_URL", "postgresql://reviewer:secret@db.example/reviews")
    url = default_database_url()
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.database, url.username) == ("db.example", "reviews", "reviewer")
    monkeypatch.setenv("BLOODCELL_DB_URL", f"sqlite:///{tmp_path / 'from-url.sqlite'}")
    with ReviewStore() as store:
        assert "secret" not in store.where
        store.record(decision())
    assert (tmp_path / "from-url.sqlite").is_file()
    assert not (tmp_path / "ignored.sqlite").exists()


def test_the_password_never_appears_in_messages(tmp_path):
    with pytest.raises(ReviewStoreError) as error:
        ReviewStore("postgresql+psycopg://reviewer:s3cret-pw@127.0.0.1:1/reviews?connect_timeout=2")
    assert "s3cret-pw" not in str(error.value)
    assert "could not open" in str(error.value)
