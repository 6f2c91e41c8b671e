"""Reviewer sign-in widgets (the rules are in :mod:`bloodcell_core.review.auth`).

Pages call exactly one of :func:`sign_in_form`, :func:`require_viewer` or :func:`require_reviewer`
per run (each draws the sign-in widgets once), usually through :func:`dashboard.state.sign_in`, and
write through :func:`bloodcell_core.review.auth.guarded_record`.
"""
from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from bloodcell_core.review.auth import (
    SESSION_MODE_KEY,
    SESSION_USER_KEY,
    SIGN_IN_NOT_CONFIGURED,
    AuthConfigError,
    Identity,
    authenticate,
    load_accounts,
    oidc_providers,
    read_only_open,
    session_identity,
    sign_in_mode,
    unverified_identity,
)
from bloodcell_core.review.throttle import SIGN_IN_THROTTLE, throttle_settings
from dashboard import session_cookie
from dashboard.session_cookie import app_secrets

__all__ = ["app_secrets", "current_identity", "current_reviewer", "read_only_allowed", "require_reviewer",
           "require_viewer", "sign_in_form"]


def _user_info() -> Mapping[str, Any]:
    return st.user.to_dict()


def current_identity() -> Identity | None:
    return session_identity(app_secrets(), st.session_state, _user_info())


def current_reviewer() -> str | None:
    """The identity to record decisions under, or None when nobody who may record is signed in."""
    identity = current_identity()
    return identity.name if identity is not None and identity.may_record else None


def read_only_allowed() -> bool:
    return read_only_open(app_secrets())


def _keep_session(secrets: Mapping[str, Any], container: Any) -> None:
    """Restore / check / start the session that survives reloads (:mod:`dashboard.session_cookie`).

    A data directory that can't be written costs only the reload persistence, not the page.
    """
    try:
        session_cookie.keep_session(secrets, container)
    except OSError:
        return


def _sign_out(mode: str) -> None:
    """Sign out and forget the session kept for reloads (its cookie's record and its batch)."""
    session_cookie.forget_session()
    if mode == "oidc":
        st.logout()
        return
    st.session_state.pop(SESSION_USER_KEY, None)
    st.session_state.pop(SESSION_MODE_KEY, None)
    st.rerun()


def _sign_in(name: str, mode: str) -> None:
    st.session_state[SESSION_USER_KEY] = name
    st.session_state[SESSION_MODE_KEY] = mode
    session_cookie.remember_user(name, mode)
    st.rerun()


def _browser_session() -> str:
    """This browser tab's Streamlit session id (what the per-session sign-in throttle counts)."""
    context = get_script_run_ctx()
    return context.session_id if context is not None else "no-session"


def _password_attempt(container: Any, secrets: Mapping[str, Any], username: str, password: str) -> None:
    """Check one submitted password, unless this user name or session must still wait (throttle)."""
    try:
        SIGN_IN_THROTTLE.configure(*throttle_settings(secrets))
    except AuthConfigError as error:
        container.error(f"Sign-in configuration: {error}")
        return
    session = _browser_session()
    wait = SIGN_IN_THROTTLE.wait_s(username, session)
    if wait > 0:
        SIGN_IN_THROTTLE.refused(username, session, wait)
        container.error(f"Too many failed sign-ins: try again in {math.ceil(wait)} s.")
        return
    account = authenticate(load_accounts(secrets), username, password)
    if account is None:
        SIGN_IN_THROTTLE.failed(username, session)
        container.error("Wrong username or password.")
        return
    SIGN_IN_THROTTLE.succeeded(username, session)
    _sign_in(account.username, "password")


def _password_form(container: Any, secrets: Mapping[str, Any]) -> None:
    form = container.form("bloodcell-sign-in", clear_on_submit=True)
    username = form.text_input("Username", key="bloodcell-sign-in-username")
    password = form.text_input("Password", type="password", key="bloodcell-sign-in-password")
    if form.form_submit_button("Sign in"):
        _password_attempt(container, secrets, username, password)


def _unverified_form(container: Any) -> None:
    form = container.form("bloodcell-sign-in", clear_on_submit=True)
    typed = form.text_input("Your name", key="bloodcell-sign-in-name")
    submitted = form.form_submit_button("Start reviewing")
    container.caption("Development mode: names are not verified and are recorded as 'unverified:<name>'.")
    if submitted:
        name = unverified_identity(typed)
        if name is None:
            container.error("Type your name.")
        else:
            _sign_in(name, "unverified")


def authlib_installed() -> bool:
    """st.login needs Authlib; without it we say so instead of letting st.login raise."""
    return importlib.util.find_spec("authlib") is not None


def _oidc_buttons(container: Any, providers: list[str]) -> None:
    if not authlib_installed():
        container.error("OIDC sign-in needs Authlib: pip install 'Authlib>=1.3.2'")
        return
    for provider in providers:
        label = "Sign in" if provider == "default" else f"Sign in with {provider.capitalize()}"
        if not container.button(label, key=f"bloodcell-login-{provider}"):
            continue
        if provider == "default":
            st.login()
        else:
            st.login(provider)


def sign_in_form(location: str = "sidebar") -> Identity | None:
    """Draw the sign-in (or signed-in + sign-out) widgets in the sidebar or the main area.

    Returns the signed-in identity.  Configuration errors are shown, not raised.
    """
    container = st.sidebar if location == "sidebar" else st.container()
    try:
        secrets = app_secrets()
        _keep_session(secrets, container)
        mode = sign_in_mode(secrets)
        identity = session_identity(secrets, st.session_state, _user_info())
    except AuthConfigError as error:
        container.error(f"Sign-in configuration: {error}")
        return None
    if identity is not None:
        # st.text, not markdown: a typed (unverified) name must not render as links or images
        container.text(f"Signed in as {identity.display_name}" + ("" if identity.may_record else " (view only)"))
        if container.button("Sign out", key="bloodcell-sign-out"):
            _sign_out(mode)
        return identity
    if mode == "oidc":
        if _user_info().get("is_logged_in") is True:
            container.error("This account is not allowed to sign in here.")
            if container.button("Sign out", key="bloodcell-sign-out"):
                _sign_out(mode)
        else:
            _oidc_buttons(container, oidc_providers(secrets))
    elif mode == "password":
        _password_form(container, secrets)
    elif mode == "unverified":
        _unverified_form(container)
    return None


def require_reviewer(location: str = "sidebar") -> str | None:
    """Draw the sign-in widgets; the identity to record under, or None (with a message) when none."""
    identity = sign_in_form(location)
    if identity is not None and identity.may_record:
        return identity.name
    if identity is not None:
        st.info(f"{identity.display_name} may view but not record decisions (role: {identity.role}).")
        return None
    try:
        closed = sign_in_mode(app_secrets()) == "closed"
    except AuthConfigError:
        return None  # sign_in_form has shown the configuration error
    st.info(SIGN_IN_NOT_CONFIGURED if closed else "Sign in to record decisions.")
    return None


def require_viewer(location: str = "sidebar") -> bool:
    """Draw the sign-in widgets; whether this page may be shown (pages ``st.stop()`` when False)."""
    identity = sign_in_form(location)
    try:
        allowed = identity is not None or read_only_allowed()
    except AuthConfigError:
        return False
    if not allowed:
        st.info("Sign in to view this page.")
    return allowed
