"""Sessions kept across reloads: signed cookies, idle timeout, the batch kept by content hash."""
from __future__ import annotations

from pathlib import Path

import pytest

from bloodcell_core.review.auth import AuthConfigError
from bloodcell_core.review.sessions import COOKIE_LIFETIME_S, SessionStore, idle_minutes, secret_key
from dashboard.session_cookie import cookie_script


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SessionStore:
    return SessionStore(tmp_path, b"test secret", idle_s=30 * 60, clock=clock)


def test_a_signed_cookie_finds_its_record_and_a_forged_one_does_not(store, tmp_path):
    record = store.create()
    record.user, record.mode = "alice", "password"
    store.save(record)
    cookie = store.cookie_for(record)
    assert store.from_cookie(cookie).user == "alice"
    session_id, expires, signature = cookie.split(".")
    assert store.from_cookie(f"{session_id}.{int(expires) + 3600}.{signature}") is None  # longer life: forged
    assert store.from_cookie(f"{session_id}.{expires}.{'0' * 64}") is None
    assert SessionStore(tmp_path, b"another secret").from_cookie(cookie) is None
    for junk in (None, "", "a.b", "../../etc/passwd.1.2", "x" * 5000):
        assert store.from_cookie(junk) is None


def test_idle_sessions_and_old_cookies_expire(store, clock):
    record = store.create()
    cookie = store.cookie_for(record)
    clock.now += 29 * 60
    store.touch(record)
    clock.now += 29 * 60  # active 29 minutes ago: still live
    assert store.from_cookie(cookie) is not None
    clock.now += 2 * 60
    assert store.from_cookie(cookie) is None and not list(store.sessions.glob("*.json"))
    fresh = store.create()
    clock.now += COOKIE_LIFETIME_S + 1
    fresh.seen = clock.now
    store.save(fresh)
    assert store.from_cookie(store.cookie_for(fresh)) is None  # the cookie's own expiry


def test_the_batch_is_kept_by_content_hash_and_dropped_when_nobody_needs_it(store, clock):
    first, second = store.create(), store.create()
    store.keep_batch(first, [("a.png", b"AAA"), ("b.png", b"BBB")])
    store.keep_batch(second, [("copy-of-a.png", b"AAA")])
    assert len(list(store.images.iterdir())) == 2  # the same bytes are kept once
    assert store.batch_files(store.load(first.session_id)) == [("a.png", b"AAA"), ("b.png", b"BBB")]
    store.clear_batch(first)
    assert [p.read_bytes() for p in store.images.iterdir()] == [b"AAA"]  # still in the second's batch
    store.end(second.session_id)
    assert not list(store.images.iterdir())
    third = store.create()
    store.keep_batch(third, [("c.png", b"CCC")])
    clock.now += 31 * 60
    store.create()  # a new session sweeps the idle ones
    assert store.load(third.session_id) is None and not list(store.images.iterdir())


def test_secret_and_idle_timeout_come_from_the_config(tmp_path):
    assert secret_key("configured", tmp_path) == b"configured"
    made = secret_key(None, tmp_path)
    assert len(made) == 64 and secret_key(None, tmp_path) == made
    assert (tmp_path / "session-secret").stat().st_mode & 0o077 == 0
    assert idle_minutes({}) == 30 and idle_minutes({"access": {"idle_timeout_minutes": 5}}) == 5
    for bad in (0, -1, "ten", True):
        with pytest.raises(AuthConfigError, match="idle_timeout_minutes"):
            idle_minutes({"access": {"idle_timeout_minutes": bad}})
    script = cookie_script("abc.1.sig", 60)
    assert script.startswith("<script>")
    assert '"bloodcell_session=abc.1.sig; Path=/; Max-Age=60; SameSite=Strict"' in script


def test_signing_in_moves_the_session_to_a_new_record_and_signing_out_deletes_it(monkeypatch, tmp_path):
    import json

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path))
    app = AppTest.from_string("from dashboard.sign_in import require_reviewer\nrequire_reviewer()\n",
                              default_timeout=30)
    app.secrets.update({"access": {"allow_unverified_names": True}})
    app.run()
    before = app.session_state["auth_session_id"]
    assert [p.stem for p in (tmp_path / "sessions").glob("*.json")] == [before]
    app.sidebar.text_input(key="bloodcell-sign-in-name").input("Dr Test")
    next(b for b in app.sidebar.button if b.label == "Start reviewing").click().run()
    after = app.session_state["auth_session_id"]
    records = list((tmp_path / "sessions").glob("*.json"))
    assert after != before and [p.stem for p in records] == [after]
    assert json.loads(records[0].read_text())["user"] == "unverified:Dr Test"
    assert any("bloodcell_session=" in h.proto.body for h in app.sidebar.get("html"))  # the new cookie
    next(b for b in app.sidebar.button if b.label == "Sign out").click().run()
    assert after not in [p.stem for p in (tmp_path / "sessions").glob("*.json")]
    assert "auth_user" not in app.session_state


def test_an_idle_signed_in_session_is_signed_out_with_a_note(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from bloodcell_core.review import sessions

    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path))
    app = AppTest.from_string("from dashboard.sign_in import require_reviewer\nrequire_reviewer()\n",
                              default_timeout=30)
    app.secrets.update({"access": {"allow_unverified_names": True, "idle_timeout_minutes": 1}})
    app.run()
    app.sidebar.text_input(key="bloodcell-sign-in-name").input("Dr Idle")
    next(b for b in app.sidebar.button if b.label == "Start reviewing").click().run()
    assert "auth_user" in app.session_state
    later = sessions.time.time() + 61
    monkeypatch.setattr(sessions.time, "time", lambda: later)
    app.run()
    assert "auth_user" not in app.session_state
    assert any("Signed out: 1 minutes without activity" in c.value for c in app.sidebar.caption)
    assert any(b.label == "Start reviewing" for b in app.sidebar.button)
