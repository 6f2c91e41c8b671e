"""Streamlit glue for :mod:`bloodcell_core.review.sessions`: keep the sign-in and the batch across reloads.

:func:`keep_session` runs at the top of every page run (from :func:`dashboard.sign_in.sign_in_form`):

- on a session's first run it looks for the session cookie (``st.context.cookies``, sent with
  the page's websocket request) and, when it names a live record, restores the sign-in from it;
- later runs check the record is still live: idle longer than the timeout, the session is signed
  out (and its batch dropped) with a one-line note;
- a session without a record gets a new one, and the browser the cookie (a two-line script drawn
  with ``st.html``; the cookie is not HttpOnly, as only a page script can set it from Streamlit);
- signing in moves the session to a new record and cookie (no session fixation), signing out
  deletes the record (:func:`remember_user`, :func:`forget_session`, called by ``sign_in``).

The context's cookies are those of the websocket's start, so they are only read on the first run:
after a sign-out the old cookie is not read again, and the new record's cookie replaces it.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from bloodcell_core.errors import BloodcellError
from bloodcell_core.review.auth import SESSION_MODE_KEY, SESSION_USER_KEY
from bloodcell_core.review.sessions import COOKIE_LIFETIME_S, COOKIE_NAME, SessionRecord, SessionStore, \
    session_store

SESSION_ID_KEY = "auth_session_id"
COOKIE_CHECKED_KEY = "auth_cookie_checked"
PENDING_COOKIE_KEY = "auth_pending_cookie"  # a cookie to hand the browser on the next run


def app_secrets() -> Mapping[str, Any]:
    """``st.secrets`` as plain dicts, or ``{}`` when there is no (readable) secrets.toml."""
    if not st.secrets.load_if_toml_exists():
        return {}
    return st.secrets.to_dict()


def cookie_script(value: str, max_age_s: int) -> str:
    """The script that stores the session cookie in the browser (for this app's path, same site only)."""
    cookie = json.dumps(f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age_s}; SameSite=Strict")
    return (f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');"
            "</script>")


def _restore(record: SessionRecord) -> None:
    if record.user and SESSION_USER_KEY not in st.session_state:
        st.session_state[SESSION_USER_KEY] = record.user
        st.session_state[SESSION_MODE_KEY] = record.mode


def _sign_out_locally() -> bool:
    """Forget this session's sign-in and record id; whether someone was signed in."""
    was_signed_in = st.session_state.get(SESSION_USER_KEY) is not None
    for key in (SESSION_USER_KEY, SESSION_MODE_KEY, SESSION_ID_KEY):
        st.session_state.pop(key, None)
    return was_signed_in


def keep_session(secrets: Mapping[str, Any], container: Any) -> SessionRecord:
    """This session's live record (restored, checked or new; see the module docstring)."""
    store = session_store(secrets)
    record = None
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id is None and not st.session_state.get(COOKIE_CHECKED_KEY):
        record = store.from_cookie(st.context.cookies.get(COOKIE_NAME))
        if record is not None:
            _restore(record)
    elif session_id is not None:
        record = store.load(session_id)
        if record is None and _sign_out_locally():
            container.caption(f"Signed out: {store.idle_s / 60:.0f} minutes without activity, or signed out "
                              "in another tab.")
    st.session_state[COOKIE_CHECKED_KEY] = True
    cookie = st.session_state.pop(PENDING_COOKIE_KEY, None)
    if record is None:
        record = store.create()
        cookie = store.cookie_for(record)
    if cookie is not None:
        container.html(cookie_script(cookie, COOKIE_LIFETIME_S), unsafe_allow_javascript=True)
    st.session_state[SESSION_ID_KEY] = record.session_id
    store.touch(record)
    return record


def _best_effort(action: Callable[..., None]) -> Callable[..., None]:
    """Persistence is a convenience: a data directory that can't be written must not break a page."""
    @functools.wraps(action)
    def wrapped(*args: Any, **kwargs: Any) -> None:
        try:
            action(*args, **kwargs)
        except OSError:
            return

    return wrapped


def _current() -> tuple[SessionStore, SessionRecord] | None:
    """(store, this session's live record), or None: no record, or persistence unavailable (a
    configuration error, which the sign-in widgets show, or a data directory that can't be used)."""
    session_id = st.session_state.get(SESSION_ID_KEY)
    if not session_id:
        return None
    try:
        store = session_store(app_secrets())
        record = store.load(session_id)
    except (OSError, BloodcellError):
        return None
    return None if record is None else (store, record)


@_best_effort
def touch_session() -> None:
    """Note activity from a run that does not draw the sign-in (a fragment's rerun)."""
    current = _current()
    if current is not None:
        current[0].touch(current[1])


@_best_effort
def remember_user(name: str | None, mode: str | None) -> None:
    """Sign-in: move this session to a new record (new id, new cookie) that names the user.

    A new id on sign-in means a cookie planted or seen before the sign-in never carries it.  The
    new cookie is written by the next run's :func:`keep_session` (the sign-in reruns at once).
    """
    current = _current()
    if current is None:
        return
    store, old = current
    record = store.create()
    record.user, record.mode, record.batch = name, mode, list(old.batch)
    store.save(record)  # before ending the old one: its batch's images stay wanted
    store.end(old.session_id)
    st.session_state[SESSION_ID_KEY] = record.session_id
    st.session_state[PENDING_COOKIE_KEY] = store.cookie_for(record)


def forget_session() -> None:
    """Sign-out: delete the record and its batch; the next run starts a new session (and cookie).

    Should the record not be deletable, it is at least stripped of the user and the batch.
    """
    current = _current()
    st.session_state.pop(SESSION_ID_KEY, None)
    if current is None:
        return
    store, record = current
    try:
        store.end(record.session_id)
    except OSError:
        record.user = record.mode = None
        record.batch = []
        _best_effort(store.save)(record)


def kept_batch() -> list[tuple[str, bytes]]:
    """The batch kept for this session (empty when none)."""
    current = _current()
    return [] if current is None else current[0].batch_files(current[1])


@_best_effort
def keep_batch(files: Sequence[tuple[str, bytes]]) -> None:
    current = _current()
    if current is not None:
        current[0].keep_batch(current[1], files)


@_best_effort
def clear_batch() -> None:
    current = _current()
    if current is not None:
        current[0].clear_batch(current[1])
