"""Reviewer sign-in: who may record decisions, and which identity each decision carries.

Configuration lives in Streamlit secrets (``.streamlit/secrets.toml``, never committed; see
``.streamlit/secrets.toml.example``).  The sign-in *mode* is chosen from it, first match wins:

1. ``oidc`` -- an ``[auth]`` section as ``st.login`` expects it: ``redirect_uri``, ``cookie_secret``
   and either ``client_id``/``client_secret``/``server_metadata_url`` in ``[auth]`` itself (the
   default provider) or in named ``[auth.<provider>]`` sections.  Reviewers sign in with
   ``st.login`` (needs ``Authlib>=1.3.2``); the recorded identity is the provider's e-mail claim
   (else ``oidc:<subject>``).  Any account the provider accepts may sign in unless
   ``[access] oidc_allowed = ["alice@hospital.org", "@hospital.org"]`` lists the allowed
   addresses / ``@domains``.  Password accounts are not offered in this mode.
2. ``password`` -- ``[reviewers.<username>]`` sections with ``password_hash`` (bcrypt, salted;
   ``python -m bloodcell_core hash-password`` prints one), ``display_name`` and optional ``role``
   (``"reviewer"``, the default, may record; ``"viewer"`` may only sign in to view).  The recorded
   identity is the username (lower-case; letters, digits and ``. _ @ -``).
3. ``unverified`` -- development only: neither of the above is configured and
   ``[access] allow_unverified_names = true``.  Anyone types a name and may record; it is stored
   as ``unverified:<name>`` so the audit trail shows it was never checked.  The flag is ignored
   as soon as accounts or OIDC are configured, so it can't weaken a real set-up.
4. ``closed`` -- nothing configured (a fresh install, or Streamlit Cloud without secrets):
   decisions can't be recorded, and pages say how to configure sign-in
   (:data:`SIGN_IN_NOT_CONFIGURED`).  We refuse rather than accept typed names by default,
   because a free-text name in a clinical audit trail looks like an identity and isn't one.

Viewing without signing in: ``[access] read_only_open = true|false``.  When unset it is open in
modes 3 and 4 (no real sign-in exists that could protect anything) and closed in modes 1 and 2
(an operator who configured accounts expects the data behind them).

Pages call exactly one of :func:`sign_in_form`, :func:`require_viewer` or :func:`require_reviewer`
per run (each draws the sign-in widgets once), and write through :func:`guarded_record`, which
stamps the signed-in identity on the decision and refuses when there is none.
"""
from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import bcrypt

from bloodcell_core.errors import BloodcellError

if TYPE_CHECKING:
    from bloodcell_core.review.store import Decision, ReviewStore

ROLES = ("reviewer", "viewer")
MODES = ("oidc", "password", "unverified", "closed")
BCRYPT_ROUNDS = 12
BCRYPT_MAX_PASSWORD_BYTES = 72
UNVERIFIED_PREFIX = "unverified:"
SESSION_USER_KEY = "auth_user"
SESSION_MODE_KEY = "auth_mode"
OIDC_REQUIRED_KEYS = ("client_id", "client_secret", "server_metadata_url")
SIGN_IN_NOT_CONFIGURED = (
    "Recording decisions needs reviewer sign-in, which is not configured. Add a "
    "[reviewers.<username>] account to .streamlit/secrets.toml (python -m bloodcell_core "
    "hash-password prints one), configure an OIDC provider in [auth], or, for single-user local "
    "use only, set [access] allow_unverified_names = true.")

_USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_BCRYPT_HASH_PATTERN = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


class AuthConfigError(BloodcellError):
    """The sign-in configuration in the secrets is incomplete or malformed."""


@dataclass(frozen=True)
class Account:
    """A password account from ``[reviewers.<username>]``."""

    username: str
    display_name: str
    password_hash: str = field(repr=False)
    role: str = "reviewer"


@dataclass(frozen=True)
class Identity:
    """Who is signed in: ``name`` is what decisions record."""

    name: str
    display_name: str
    role: str
    mode: str

    @property
    def may_record(self) -> bool:
        return self.role == "reviewer"


# -- passwords ---------------------------------------------------------------------------------

def _password_bytes(password: str) -> bytes:
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_PASSWORD_BYTES:
        raise BloodcellError(f"passwords are limited to {BCRYPT_MAX_PASSWORD_BYTES} bytes (bcrypt)")
    return encoded


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """A salted bcrypt hash of ``password`` for ``password_hash`` in the secrets."""
    if not password:
        raise BloodcellError("the password is empty")
    return bcrypt.hashpw(_password_bytes(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches the bcrypt ``hashed``; False for anything malformed."""
    try:
        return bcrypt.checkpw(_password_bytes(password), hashed.encode("ascii"))
    except (BloodcellError, ValueError, TypeError, UnicodeEncodeError, AttributeError):
        return False


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """Checked for unknown usernames, so a miss costs as long as a wrong password."""
    return hash_password("decoy password")


# -- accounts and configuration (pure: they take the secrets as a mapping) ----------------------

def normalise_username(username: str) -> str:
    return str(username or "").strip().lower()


def _section(secrets: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = secrets.get(name) if isinstance(secrets, Mapping) else None
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise AuthConfigError(f"[{name}] in the secrets must be a table")
    return section


def load_accounts(secrets: Mapping[str, Any]) -> dict[str, Account]:
    """Password accounts from ``[reviewers.<username>]`` (keyed by lower-case username)."""
    accounts: dict[str, Account] = {}
    for raw_name, entry in _section(secrets, "reviewers").items():
        username = normalise_username(raw_name)
        where = f"[reviewers.{raw_name}]"
        if not _USERNAME_PATTERN.match(username):
            raise AuthConfigError(f"{where}: usernames use letters, digits and . _ @ - (at most 64)")
        if username in accounts:
            raise AuthConfigError(f"{where}: username {username!r} is defined twice (names ignore case)")
        if not isinstance(entry, Mapping):
            raise AuthConfigError(f"{where} must be a table with password_hash and display_name")
        password_hash = str(entry.get("password_hash", "")).strip()
        if not _BCRYPT_HASH_PATTERN.match(password_hash):
            raise AuthConfigError(f"{where}: password_hash is not a bcrypt hash "
                                  "(make one with: python -m bloodcell_core hash-password)")
        role = str(entry.get("role", "reviewer")).strip().lower()
        if role not in ROLES:
            raise AuthConfigError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        display_name = str(entry.get("display_name", "")).strip() or username
        accounts[username] = Account(username, display_name, password_hash, role)
    return accounts


def authenticate(accounts: Mapping[str, Account], username: str, password: str) -> Account | None:
    """The account when ``password`` is right for ``username``, else None (same cost either way)."""
    account = accounts.get(normalise_username(username))
    if account is None:
        verify_password(password or "", _decoy_hash())
        return None
    return account if verify_password(password or "", account.password_hash) else None


def oidc_providers(secrets: Mapping[str, Any]) -> list[str]:
    """Providers ``st.login`` can use: ``"default"`` and/or named ``[auth.<name>]`` sections.

    Empty without an ``[auth]`` section; AuthConfigError when one exists but is incomplete, so a
    half-configured OIDC set-up fails loudly instead of silently falling back to passwords.
    """
    auth = _section(secrets, "auth")
    if not auth:
        return []
    missing_shared = [key for key in ("redirect_uri", "cookie_secret") if not auth.get(key)]
    if missing_shared:
        raise AuthConfigError(f"[auth] in the secrets is missing {', '.join(missing_shared)} (see st.login docs)")
    providers = []
    if any(key in auth for key in OIDC_REQUIRED_KEYS):
        providers.append("default")
    providers += [name for name, value in auth.items() if isinstance(value, Mapping) and name != "client_kwargs"]
    if not providers:
        raise AuthConfigError("[auth] in the secrets names no provider: add client_id, client_secret and "
                              "server_metadata_url to [auth] or to an [auth.<provider>] section")
    for provider in providers:
        settings = auth if provider == "default" else auth[provider]
        missing = [key for key in OIDC_REQUIRED_KEYS if not settings.get(key)]
        if missing:
            where = "[auth]" if provider == "default" else f"[auth.{provider}]"
            raise AuthConfigError(f"{where} in the secrets is missing {', '.join(missing)}")
    return providers


def oidc_configured(secrets: Mapping[str, Any]) -> bool:
    return bool(oidc_providers(secrets))


def _flag(secrets: Mapping[str, Any], key: str) -> bool | None:
    value = _section(secrets, "access").get(key)
    if value is None or isinstance(value, bool):
        return value
    raise AuthConfigError(f"[access] {key} must be true or false")


def sign_in_mode(secrets: Mapping[str, Any]) -> str:
    """One of :data:`MODES`, as described in the module docstring."""
    if oidc_configured(secrets):
        return "oidc"
    if load_accounts(secrets):
        return "password"
    if _flag(secrets, "allow_unverified_names"):
        return "unverified"
    return "closed"


def read_only_open(secrets: Mapping[str, Any]) -> bool:
    """Whether pages may be viewed without signing in (see the module docstring for the default)."""
    configured = _flag(secrets, "read_only_open")
    if configured is not None:
        return configured
    return sign_in_mode(secrets) in ("unverified", "closed")


def unverified_identity(name: str) -> str | None:
    """``unverified:<name>`` for a typed name (spaces collapsed, at most 64 characters), None if blank."""
    visible = "".join(ch if ch.isprintable() else " " for ch in str(name or ""))
    cleaned = " ".join(visible.split())[:64]
    return f"{UNVERIFIED_PREFIX}{cleaned}" if cleaned else None


def oidc_identity(user_info: Mapping[str, Any], secrets: Mapping[str, Any]) -> Identity | None:
    """The identity of an ``st.user`` that is logged in (and allowed), else None."""
    if user_info.get("is_logged_in") is not True:
        return None
    email = str(user_info.get("email") or "").strip().lower()
    subject = str(user_info.get("sub") or "").strip()
    name = email or (f"oidc:{subject}" if subject else "")
    if not name or not oidc_allowed(email, secrets):
        return None
    display_name = str(user_info.get("name") or "").strip() or name
    return Identity(name=name, display_name=display_name, role="reviewer", mode="oidc")


def oidc_allowed(email: str, secrets: Mapping[str, Any]) -> bool:
    """Whether ``[access] oidc_allowed`` (addresses and ``@domains``) admits ``email``; no list admits all."""
    allowed = _section(secrets, "access").get("oidc_allowed")
    if allowed is None:
        return True
    if isinstance(allowed, str) or not all(isinstance(entry, str) for entry in allowed):
        raise AuthConfigError('[access] oidc_allowed must be a list such as ["alice@hospital.org", "@hospital.org"]')
    email = email.strip().lower()
    if not email:
        return False
    entries = {entry.strip().lower() for entry in allowed}
    return email in entries or f"@{email.rpartition('@')[2]}" in entries


def session_identity(secrets: Mapping[str, Any], session: Mapping[str, Any],
                     user_info: Mapping[str, Any] | None = None) -> Identity | None:
    """Who is signed in, given the secrets, the session state and (for OIDC) ``st.user``.

    A session signed in under another mode, or as an account that no longer exists, counts as
    signed out, so changing the secrets takes effect at the next rerun.
    """
    mode = sign_in_mode(secrets)
    if mode == "oidc":
        return oidc_identity(user_info or {}, secrets)
    signed_in = session.get(SESSION_USER_KEY)
    if not signed_in or session.get(SESSION_MODE_KEY) != mode:
        return None
    if mode == "password":
        account = load_accounts(secrets).get(signed_in)
        return None if account is None else Identity(account.username, account.display_name, account.role, mode)
    if mode == "unverified" and str(signed_in).startswith(UNVERIFIED_PREFIX):
        return Identity(signed_in, signed_in[len(UNVERIFIED_PREFIX):], "reviewer", mode)
    return None


def guarded_record(store: ReviewStore, decision: Decision, reviewer: str | None) -> bool:
    """Record ``decision`` as ``reviewer`` (the signed-in identity, replacing whatever it carried).

    Raises BloodcellError when nobody is signed in, so no page can write anonymously, and
    ReviewStoreError (ReviewStoreBusy: "the review database is busy, try again") when the store
    can't take the write; pages show either as one line.
    """
    if not reviewer or not str(reviewer).strip():
        raise BloodcellError("sign in to record decisions")
    return store.record(replace(decision, reviewer=reviewer))


def guarded_record_many(store: ReviewStore, decisions: list[Decision], reviewer: str | None) -> int:
    """:func:`guarded_record` for several decisions, written in one transaction; rows written."""
    if not reviewer or not str(reviewer).strip():
        raise BloodcellError("sign in to record decisions")
    return store.record_many([replace(decision, reviewer=reviewer) for decision in decisions])


# -- Streamlit glue ------------------------------------------------------------------------------

def app_secrets() -> Mapping[str, Any]:
    """``st.secrets`` as plain dicts, or ``{}`` when there is no (readable) secrets.toml."""
    import streamlit as st

    if not st.secrets.load_if_toml_exists():
        return {}
    return st.secrets.to_dict()


def _user_info() -> Mapping[str, Any]:
    import streamlit as st

    return st.user.to_dict()


def current_identity() -> Identity | None:
    import streamlit as st

    return session_identity(app_secrets(), st.session_state, _user_info())


def current_reviewer() -> str | None:
    """The identity to record decisions under, or None when nobody who may record is signed in."""
    identity = current_identity()
    return identity.name if identity is not None and identity.may_record else None


def read_only_allowed() -> bool:
    return read_only_open(app_secrets())


def _keep_session(secrets: Mapping[str, Any], container: Any) -> None:
    """Restore / check / start the session that survives reloads (:mod:`.persistence`).

    A data directory that can't be written costs only the reload persistence, not the page.
    """
    from bloodcell_core.review import persistence

    try:
        persistence.keep_session(secrets, container)
    except OSError:
        return


def _sign_out(mode: str) -> None:
    """Sign out and forget the session kept for reloads (its cookie's record and its batch)."""
    import streamlit as st

    from bloodcell_core.review import persistence

    persistence.forget_session()
    if mode == "oidc":
        st.logout()
        return
    st.session_state.pop(SESSION_USER_KEY, None)
    st.session_state.pop(SESSION_MODE_KEY, None)
    st.rerun()


def _sign_in(name: str, mode: str) -> None:
    import streamlit as st

    from bloodcell_core.review import persistence

    st.session_state[SESSION_USER_KEY] = name
    st.session_state[SESSION_MODE_KEY] = mode
    persistence.remember_user(name, mode)
    st.rerun()


def _browser_session() -> str:
    """This browser tab's Streamlit session id (what the per-session sign-in throttle counts)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return context.session_id if context is not None else "no-session"


def _password_attempt(container: Any, secrets: Mapping[str, Any], username: str, password: str) -> None:
    """Check one submitted password, unless this user name or session must still wait (throttle)."""
    import math

    from bloodcell_core.review.throttle import SIGN_IN_THROTTLE, throttle_settings

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
    import streamlit as st

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
    import streamlit as st

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
    import streamlit as st

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
    import streamlit as st

    identity = sign_in_form(location)
    try:
        allowed = identity is not None or read_only_allowed()
    except AuthConfigError:
        return False
    if not allowed:
        st.info("Sign in to view this page.")
    return allowed
