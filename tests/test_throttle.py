"""Failed sign-ins are throttled per user name and per session, and logged without the password."""
from __future__ import annotations

import logging

import pytest
from streamlit.testing.v1 import AppTest

from bloodcell_core.review.auth import AuthConfigError, hash_password
from bloodcell_core.review.throttle import SignInThrottle, throttle_settings

PASSWORD = "right-password-123"
PAGE = """
import streamlit as st
from dashboard.sign_in import require_reviewer

st.text(f"reviewer={require_reviewer()}")
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_delays_grow_then_lock_and_a_success_clears_them():
    clock = Clock()
    throttle = SignInThrottle(lock_after=4, lock_s=600, clock=clock)
    waits = []
    for _ in range(4):
        assert throttle.wait_s("alice", "s1") == 0
        throttle.failed("alice", "s1")
        waits.append(throttle.wait_s("alice", "s1"))
        clock.now += waits[-1]
    assert waits == [1, 2, 4, 600]  # growing delay, then the lock
    clock.now -= 1
    assert throttle.wait_s("ALICE ", "another session") == 1  # per user name, whatever the session
    assert throttle.wait_s("bob", "s1") == 1  # per session, whatever the user name
    assert throttle.wait_s("bob", "s2") == 0
    clock.now += 1
    throttle.succeeded("alice", "s1")
    assert throttle.wait_s("alice", "s1") == 0


def test_failures_are_logged_without_the_password(caplog):
    throttle = SignInThrottle()
    with caplog.at_level(logging.INFO, logger="bloodcell_core.sign_in"):
        throttle.failed("mallory\nfake log line", "session-1")
        throttle.refused("mallory", "session-1", 1.0)
    text = caplog.text
    assert "sign-in failed" in text and "'mallory\\nfake log line'" in text and "session-1" not in text
    assert "sign-in refused while throttled" in text


def test_settings_come_from_the_access_section():
    assert throttle_settings({}) == (5, 900.0)
    assert throttle_settings({"access": {"sign_in_lock_after": 3, "sign_in_lock_minutes": 1}}) == (3, 60.0)
    with pytest.raises(AuthConfigError):
        throttle_settings({"access": {"sign_in_lock_after": 0}})


@pytest.fixture
def app_clock(monkeypatch: pytest.MonkeyPatch):
    """The app's one throttle on a test clock (a slow run can't outwait a delay by accident), emptied
    before and after."""
    from bloodcell_core.review.throttle import SIGN_IN_THROTTLE

    clock = Clock()
    monkeypatch.setattr(SIGN_IN_THROTTLE, "_clock", clock)
    SIGN_IN_THROTTLE.reset()
    yield clock
    SIGN_IN_THROTTLE.reset()


def test_the_sign_in_form_refuses_even_the_right_password_while_throttled(monkeypatch, tmp_path, caplog,
                                                                         app_clock):
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path))
    app = AppTest.from_string(PAGE, default_timeout=30)
    app.secrets.update({"reviewers": {"alice": {"password_hash": hash_password(PASSWORD, rounds=4),
                                                "display_name": "Dr Alice"}}})
    app.run()

    def attempt(password: str) -> list[str]:
        app.sidebar.text_input(key="bloodcell-sign-in-username").input("alice")
        app.sidebar.text_input(key="bloodcell-sign-in-password").input(password)
        next(b for b in app.sidebar.button if b.label == "Sign in").click().run()
        return [e.value for e in app.sidebar.error]

    with caplog.at_level(logging.INFO, logger="bloodcell_core.sign_in"):
        assert attempt("wrong") == ["Wrong username or password."]
        assert attempt(PASSWORD) == ["Too many failed sign-ins: try again in 1 s."]
    assert "reviewer=None" in [t.value for t in app.text]
    assert "'wrong'" not in caplog.text and PASSWORD not in caplog.text
    app_clock.now += 1.05  # the first delay has passed
    assert attempt(PASSWORD) == [] and "reviewer=alice" in [t.value for t in app.text]
