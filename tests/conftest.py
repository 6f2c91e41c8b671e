"""Shared pytest fixtures."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bloodcell_core.review.store import ReviewStore

PG_URL_VARIABLE = "BLOODCELL_TEST_PG_URL"
PG_SKIP_REASON = "BLOODCELL_TEST_PG_URL not set (CI starts PostgreSQL)"
STORE_BACKENDS = ["sqlite", "postgres"]


@contextmanager
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty review database: SQLite in tmp_path, or a fresh schema on the test PostgreSQL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'review.sqlite'}"
        return
    pg_url = os.environ.get(PG_URL_VARIABLE)
    if not pg_url:
        pytest.skip(PG_SKIP_REASON)
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=STORE_BACKENDS)
def review_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty review database, once per backend (PostgreSQL skips without a server)."""
    with empty_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def review_store(review_store_url: str) -> Iterator[ReviewStore]:
    """An empty :class:`ReviewStore`, once on SQLite and once on PostgreSQL (when available)."""
    store = ReviewStore(review_store_url)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def fresh_sign_in_throttle() -> Iterator[None]:
    """Every test starts with no failed sign-ins counted (the throttle is process-wide)."""
    from bloodcell_core.review.throttle import SIGN_IN_THROTTLE

    SIGN_IN_THROTTLE.reset()
    yield
    SIGN_IN_THROTTLE.reset()


# ==== Dashboard fixtures (tests/test_app_pages.py, tests/test_browser.py, tests/test_reporting.py) ====

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model folder (model.keras + card.json), built once per test session."""
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    return save_model(build_tiny_model(), tiny_model_card(), tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def reviewer_secrets() -> dict:
    """Streamlit secrets with one reviewer, alice (:func:`tests.helpers_dashboard.alice_reviewer_secrets`)."""
    from tests.helpers_dashboard import alice_reviewer_secrets

    return alice_reviewer_secrets()


@pytest.fixture
def cell_dataset(tmp_path: Path) -> Path:
    """A small class-folder dataset (2 classes x 3 synthetic PNGs) inside its own data root."""
    from tests.helpers_dashboard import write_cell_dataset

    root = tmp_path / "data-root" / "cells"
    write_cell_dataset(root)
    return root


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path, cell_dataset: Path) -> Path:
    """Environment for running the dashboard: the tiny model, a tmp data dir and review store, a data root."""
    data_dir = tmp_path / "app-data"
    monkeypatch.setenv("BLOODCELL_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", str(tiny_model_dir.parent))
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BLOODCELL_DB", str(data_dir / "review.sqlite"))
    monkeypatch.setenv("BLOODCELL_DATA_ROOTS", str(cell_dataset.parent))
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return data_dir
