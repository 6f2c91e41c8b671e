"""The review store: an append-only audit trail of reviewers' decisions.

One table, ``decisions``, gets one row per click; nothing is ever updated or
deleted (there are no such methods, and database triggers refuse UPDATE and
DELETE on the table), so the trail of who decided what, when, is never
rewritten.  The current state of an image is its latest decision (highest id).

Backends, through SQLAlchemy Core:

- SQLite (the default): ``$BLOODCELL_DB`` or ``data_dir()/review.sqlite``.
  WAL journal, ``busy_timeout`` and ``synchronous=FULL``; every write runs in a
  ``BEGIN IMMEDIATE`` transaction, so writers in many threads and processes
  queue for the lock instead of failing, and a process killed mid-write leaves
  only complete, committed rows.
- PostgreSQL: ``$BLOODCELL_DB_URL`` (``postgresql+psycopg://user:pw@host/db``),
  for several app instances sharing one trail.

Streamlit reruns a page script on every interaction, so a click handler can
run twice.  Pages therefore pass a deterministic ``request_id`` (see
:func:`make_request_id`); a second :meth:`ReviewStore.record` with the same id
inserts nothing and returns False.

Schema versions: ``schema_version`` holds one row per applied version.  A fresh
database gets the current schema and is stamped :data:`SCHEMA_VERSION`; an
older one is brought up to date by the functions in :data:`MIGRATIONS`; a
newer one is refused, so an old app never writes into a schema it doesn't know.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from enum import StrEnum

from bloodcell_core.errors import BloodcellError
from bloodcell_core.paths import data_dir

if TYPE_CHECKING:
    import pandas as pd

class ReviewAction(StrEnum):
    """What a decision says. The values are what the database stores (unchanged since schema 1);
    members compare equal to those strings, so rows read back as plain text match them."""

    KEEP = "keep"
    KEEP_ONE_COPY = "keep-one-copy"  # keep this file, and leave its byte-identical copies out of the export
    DROP = "drop"
    RELABEL = "relabel"
    NOT_DUPLICATE = "not-duplicate"
    CONFIRM_PREDICTION = "confirm-prediction"
    CORRECT_PREDICTION = "correct-prediction"
    ADAPT_MODEL = "adapt-model"  # a reviewer adapted a model on archived cells (bloodcell_core.adaptation.from_archive)


ACTIONS = tuple(action.value for action in ReviewAction)
ACTIONS_NEEDING_NEW_LABEL = (ReviewAction.RELABEL, ReviewAction.CORRECT_PREDICTION, ReviewAction.ADAPT_MODEL)
SCHEMA_VERSION = 2
SQLITE_BUSY_TIMEOUT_S = 30.0
# Connection pool, sized for the app: Streamlit runs one script thread per active session (plus
# button callbacks), all sharing one store; 16 concurrent writers must never queue for a pooled
# connection.  PostgreSQL counts these per app instance against its max_connections (default 100).
POOL_SIZE = 16
POOL_MAX_OVERFLOW = 16
POOL_TIMEOUT_S = 10.0  # then "busy, try again" rather than a click hanging
BUSY_MESSAGE = "the review database is busy, try again"
HISTORY_COLUMNS = ["id", "time", "dataset", "image_hash", "path", "action",
                   "old_label", "new_label", "reviewer", "note", "request_id"]
_PG_SCHEMA_LOCK_KEY = 0x626C6F6F64  # any constant; serialises schema set-up across app instances


class ReviewStoreError(BloodcellError):
    """The review database can't be opened or written, or a decision is invalid."""


class ReviewStoreBusy(ReviewStoreError):
    """Every pooled connection is in use, or the database stayed locked: nothing was written; retry."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(BUSY_MESSAGE + (f" ({detail})" if detail else ""))


@dataclass
class Decision:
    """One reviewer's decision about one image; ``time`` and ``request_id`` are filled by the store."""

    image_hash: str
    dataset: str
    path: str
    action: str
    old_label: str | None
    new_label: str | None
    reviewer: str
    note: str = ""
    time: datetime | None = None
    request_id: str | None = None


metadata = sa.MetaData()

schema_version_table = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

decisions_table = sa.Table(
    "decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("image_hash", sa.Text, nullable=False),
    sa.Column("dataset", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("old_label", sa.Text, nullable=True),
    sa.Column("new_label", sa.Text, nullable=True),
    sa.Column("reviewer", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.Text, nullable=True, unique=True),
    sa.Index("ix_decisions_image_hash", "image_hash"),
    sa.Index("ix_decisions_dataset", "dataset"),
    sa.Index("ix_decisions_reviewer", "reviewer"),
    sa.Index("ix_decisions_created_at", "created_at"),
    sqlite_autoincrement=True,  # ids are never reused, so "latest by id" is the order of commits
)

# Reviewed cells kept for adapting a model to the laboratory (bloodcell_core.review.archive): one row per
# image hash, written once (a rerun or a second review inserts nothing); the label is not stored here but
# read from the image's latest decision, so the latest decision always wins.
archived_images_table = sa.Table(
    "archived_images", metadata,
    sa.Column("image_hash", sa.Text, primary_key=True),
    sa.Column("dataset", sa.Text, nullable=False),  # whose decisions label it (classify-uploads)
    sa.Column("source", sa.Text, nullable=False),  # the laboratory name the reviewer set
    sa.Column("reviewer", sa.Text, nullable=False),  # who archived it (first review)
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("image", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_archived_images_source", "source"),
)
ARCHIVE_COLUMNS = ("image_hash", "dataset", "source", "reviewer", "media_type", "created_at")

_APPEND_ONLY_DDL = {
    "sqlite": [
        "CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions "
        "BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END",
        "CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions "
        "BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'decisions are append-only'; END $$",
        "CREATE TRIGGER decisions_no_update_delete BEFORE UPDATE OR DELETE ON decisions "
        "FOR EACH ROW EXECUTE FUNCTION decisions_append_only()",
        "CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions "
        "FOR EACH STATEMENT EXECUTE FUNCTION decisions_append_only()",
    ],
}

def _add_archived_images(connection: Connection) -> None:
    """Version 2: the reviewed-cell archive."""
    archived_images_table.create(connection, checkfirst=True)


# version -> function bringing a database at ``version - 1`` up to ``version`` (inside the
# set-up transaction).  A fresh database gets the current tables directly; a change adds e.g.
# ``3: _add_column_x`` here, edits the tables above and bumps SCHEMA_VERSION.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _add_archived_images}


def make_request_id(*parts: object) -> str:
    """A deterministic id for one intended write (sha256 of the parts, order-sensitive).

    Pages build it from (page, reviewer, image_hash, action, new_label, per-click nonce), so a
    Streamlit rerun of the same click maps to the same id and is recorded once.
    """
    encoded = json.dumps([None if p is None else str(p) for p in parts], ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def default_database_url() -> URL:
    """``$BLOODCELL_DB_URL``, else SQLite at ``$BLOODCELL_DB``, else ``data_dir()/review.sqlite``."""
    env_url = os.environ.get("BLOODCELL_DB_URL", "").strip()
    if env_url:
        return _parse_url(env_url)
    env_path = os.environ.get("BLOODCELL_DB", "").strip()
    path = Path(env_path).expanduser() if env_path else data_dir() / "review.sqlite"
    return URL.create("sqlite", database=str(path.resolve()))


def _parse_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ReviewStoreError(f"not a database URL: {str(url)!r} (expected sqlite:///path "
                               "or postgresql+psycopg://user:password@host/db)") from None
    if parsed.drivername in ("postgres", "postgresql"):  # no driver named: use psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive values are taken as UTC, as SQLite returns them)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _required_text(value: object, field: str) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ReviewStoreError(f"a decision needs a non-empty {field}")
    return text


def _optional_label(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _validated_row(decision: Decision) -> dict[str, object]:
    """The row to insert for ``decision``, or ReviewStoreError saying what is wrong with it."""
    if decision.action not in ACTIONS:
        raise ReviewStoreError(f"unknown review action {decision.action!r}; expected one of {', '.join(ACTIONS)}")
    new_label = _optional_label(decision.new_label)
    if decision.action in ACTIONS_NEEDING_NEW_LABEL and new_label is None:
        raise ReviewStoreError(f"a {decision.action!r} decision needs the new label")
    return {
        "image_hash": _required_text(decision.image_hash, "image hash"),
        "dataset": _required_text(decision.dataset, "dataset"),
        "path": "" if decision.path is None else str(decision.path),
        "action": decision.action,
        "old_label": _optional_label(decision.old_label),
        "new_label": new_label,
        "reviewer": _required_text(decision.reviewer, "reviewer (sign in to record decisions)"),
        "note": "" if decision.note is None else str(decision.note),
        "created_at": datetime.now(timezone.utc),
        "request_id": _optional_label(decision.request_id),
    }


def _decision_from_row(row: sa.Row) -> Decision:
    return Decision(image_hash=row.image_hash, dataset=row.dataset, path=row.path, action=row.action,
                    old_label=row.old_label, new_label=row.new_label, reviewer=row.reviewer,
                    note=row.note, time=_utc(row.created_at), request_id=row.request_id)


def _configure_sqlite(engine: Engine) -> None:
    """WAL + busy timeout + full sync on every connection; BEGIN IMMEDIATE for writes.

    pysqlite's own transaction handling is switched off (``isolation_level=None``) so that
    SQLAlchemy's begin/commit are real SQLite transactions (the SQLAlchemy-documented recipe).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 (DB-API objects)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get("bloodcell_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _pool_options() -> dict[str, object]:
    """QueuePool settings (read at call time, so tests can shrink the pool)."""
    return {"pool_size": POOL_SIZE, "max_overflow": POOL_MAX_OVERFLOW,
            "pool_timeout": POOL_TIMEOUT_S}


def _first_line(error: BaseException) -> str:
    """The driver's message (or SQLAlchemy's) without SQLAlchemy's multi-line background text."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_busy(error: exc.SQLAlchemyError) -> bool:
    """A pool timeout, or SQLite's lock still held after the busy timeout."""
    if isinstance(error, exc.TimeoutError):
        return True
    text = _first_line(error).lower()
    return isinstance(error, exc.OperationalError) and ("database is locked" in text or "database is busy" in text)


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ReviewStoreError("the review store needs a database file, not an in-memory SQLite database")
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **_pool_options())
            _configure_sqlite(engine)
            return engine
        if backend == "postgresql":
            return sa.create_engine(url, pool_pre_ping=True, **_pool_options())
    except (exc.NoSuchModuleError, ImportError) as error:
        raise ReviewStoreError(f"the database driver for {url.drivername} is not installed "
                               f"(pip install 'psycopg[binary]'): {error}") from None
    except exc.SQLAlchemyError as error:
        raise ReviewStoreError(f"review database {url.render_as_string(hide_password=True)}: "
                               f"{_first_line(error)}") from None
    raise ReviewStoreError(f"unsupported review database {backend!r}: use sqlite or postgresql+psycopg")


def _create_schema(connection: Connection) -> None:
    metadata.create_all(connection)
    for statement in _APPEND_ONLY_DDL.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)


def _stamp(connection: Connection, version: int) -> None:
    connection.execute(schema_version_table.insert().values(version=version, applied_at=datetime.now(timezone.utc)))


class ReviewStore:
    """Append-only decisions in SQLite or PostgreSQL; safe to share between threads."""

    def __init__(self, url: str | URL | None = None) -> None:
        self.url = _parse_url(url) if url is not None else default_database_url()
        self.where = self.url.render_as_string(hide_password=True)
        self._engine = _create_engine(self.url)
        try:
            with self._errors("open"):
                self._ensure_schema_when_unlocked()
        except BaseException:
            self._engine.dispose()
            raise

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Every SQLAlchemy failure (pool exhausted, locked, disk full, server gone, not a database) as a
        one-line ReviewStoreError; a busy pool or lock as :class:`ReviewStoreBusy`."""
        try:
            yield
        except exc.SQLAlchemyError as error:
            if _is_busy(error):
                raise ReviewStoreBusy(f"could not {doing}") from None
            raise ReviewStoreError(f"review database {self.where}: could not {doing}: {_first_line(error)}") from None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite): commits on success, rolls back on error."""
        with self._engine.connect() as connection:
            connection.execution_options(bloodcell_write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as connection, connection.begin():
            yield connection

    def _ensure_schema_when_unlocked(self) -> None:
        """:meth:`_ensure_schema`, retried while another process holds a new SQLite file's lock.

        Several processes opening a brand-new SQLite file at once (app instances starting
        together) race to switch it to WAL and create the tables; SQLite can answer
        "database is locked" at once there, without waiting out the busy timeout.  So
        retry with a short random back-off until the busy timeout has passed.
        """
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
        while True:
            try:
                return self._ensure_schema()
            except exc.OperationalError as error:
                locked = "locked" in str(error.orig or error).lower()
                if not locked or self.url.get_backend_name() != "sqlite" or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.02, 0.2))

    def _ensure_schema(self) -> None:
        with self._write() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK_KEY)))
            inspector = sa.inspect(connection)
            if not inspector.has_table(schema_version_table.name):
                if inspector.has_table(decisions_table.name):
                    raise ReviewStoreError(f"{self.where} has a 'decisions' table but no schema_version: "
                                           "not a bloodcell review database")
                _create_schema(connection)
                _stamp(connection, SCHEMA_VERSION)
                return
            current = connection.scalar(sa.select(sa.func.max(schema_version_table.c.version))) or 0
            if current > SCHEMA_VERSION:
                raise ReviewStoreError(f"review database {self.where} has schema version {current}, newer than "
                                       f"this bloodcell_core understands ({SCHEMA_VERSION}); upgrade bloodcell_core")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                if version not in MIGRATIONS:
                    raise ReviewStoreError(f"no migration to review-database schema version {version}")
                MIGRATIONS[version](connection)
                _stamp(connection, version)

    def _insert(self, connection: Connection, row: dict[str, object]) -> sa.Executable:
        """INSERT that silently skips a row whose request_id is already stored."""
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(decisions_table).values(**row)
        if row["request_id"] is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["request_id"])
        if connection.dialect.insert_returning:  # rowcount is -1 with RETURNING on psycopg
            statement = statement.returning(decisions_table.c.id)
        return statement

    # -- public API -------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._errors("read the schema version"), self._read() as connection:
            return int(connection.scalar(sa.select(sa.func.max(schema_version_table.c.version))) or 0)

    def record(self, decision: Decision) -> bool:
        """Append ``decision`` (time set now, UTC) in one transaction.

        Returns False, inserting nothing, when its ``request_id`` is already stored (a rerun
        of the same click); True when the row was written and committed.
        """
        row = _validated_row(decision)
        with self._errors("record the decision"), self._write() as connection:
            result = connection.execute(self._insert(connection, row))
            if result.returns_rows:
                return result.first() is not None
            return result.rowcount == 1

    def record_many(self, decisions: Sequence[Decision]) -> int:
        """Append every decision in ONE transaction (all or none); returns how many rows were new.

        A decision whose ``request_id`` is already stored (a rerun of the same bulk click) is
        skipped, so recording the same batch twice writes it once.
        """
        rows = [_validated_row(decision) for decision in decisions]  # refuse the batch before writing any
        if not rows:
            return 0
        written = 0
        with self._errors("record the decisions"), self._write() as connection:
            for row in rows:
                result = connection.execute(self._insert(connection, row))
                written += (result.first() is not None) if result.returns_rows else int(result.rowcount == 1)
        return written

    def latest(self, dataset: str | None = None) -> dict[str, Decision]:
        """The latest decision (highest id) per image hash, optionally for one dataset only."""
        latest_ids = sa.select(sa.func.max(decisions_table.c.id).label("id")).group_by(decisions_table.c.image_hash)
        if dataset is not None:
            latest_ids = latest_ids.where(decisions_table.c.dataset == dataset)
        latest_ids = latest_ids.subquery()
        query = sa.select(decisions_table).join(latest_ids, decisions_table.c.id == latest_ids.c.id)
        with self._errors("read decisions"), self._read() as connection:
            return {row.image_hash: _decision_from_row(row) for row in connection.execute(query)}

    def history(self, reviewer: str | None = None, action: str | None = None,
                dataset: str | None = None, since: datetime | None = None) -> pd.DataFrame:
        """Every matching decision, newest first, as a DataFrame with :data:`HISTORY_COLUMNS`."""
        import pandas as pd

        query = sa.select(decisions_table).order_by(decisions_table.c.id.desc())
        if reviewer is not None:
            query = query.where(decisions_table.c.reviewer == reviewer)
        if action is not None:
            query = query.where(decisions_table.c.action == action)
        if dataset is not None:
            query = query.where(decisions_table.c.dataset == dataset)
        if since is not None:
            query = query.where(decisions_table.c.created_at >= _utc(since))
        with self._errors("read the decision history"), self._read() as connection:
            rows = connection.execute(query).all()
        records = [{**row._asdict(), "time": _utc(row.created_at)} for row in rows]
        frame = pd.DataFrame.from_records(records, columns=[*HISTORY_COLUMNS, "created_at"])
        frame = frame[HISTORY_COLUMNS]
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        return frame

    def to_csv(self, **filters: object) -> bytes:
        """The history (same filters as :meth:`history`) as UTF-8 CSV, for download, formula-safe."""
        from bloodcell_core.outputs import frame_csv

        return frame_csv(self.history(**filters)).encode("utf-8")

    def archive(self, row: dict[str, object]) -> bool:
        """Insert one :data:`archived_images_table` row; False (nothing written) when its hash is archived."""
        with self._errors("archive the image"), self._write() as connection:
            if connection.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            statement = insert(archived_images_table).values(**row).on_conflict_do_nothing(
                index_elements=["image_hash"]).returning(archived_images_table.c.image_hash)
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT
            return connection.execute(statement).first() is not None

    def archived(self, source: str | None = None, with_images: bool = False) -> list[dict[str, object]]:
        """Archived rows (oldest first), optionally of one source; image bytes only when asked for."""
        columns = [archived_images_table.c[name] for name in ARCHIVE_COLUMNS]
        if with_images:
            columns.append(archived_images_table.c.image)
        query = sa.select(*columns).order_by(archived_images_table.c.created_at, archived_images_table.c.image_hash)
        if source is not None:
            query = query.where(archived_images_table.c.source == source)
        with self._errors("read the archive"), self._read() as connection:
            rows = connection.execute(query).all()
        return [{**row._asdict(), "created_at": _utc(row.created_at)} for row in rows]

    def count(self, dataset: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(decisions_table)
        if dataset is not None:
            query = query.where(decisions_table.c.dataset == dataset)
        with self._errors("count decisions"), self._read() as connection:
            return int(connection.scalar(query))

    def close(self) -> None:
        """Release the connection pool (the store can't be used afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ReviewStore({self.where!r})"
