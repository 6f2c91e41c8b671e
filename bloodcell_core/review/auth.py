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

The sign-in widgets are in :mod:`dashboard.sign_in`.  Every write goes through
:func:`guarded_record`, which stamps the signed-in identity on the decision and refuses when there
is none.
"""
from __future__ import annotations

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
