"""Sessions that survive a browser reload: a signed, expiring cookie naming a record on disk.

Streamlit forgets everything about a browser tab when it reloads (a new websocket is a new
session).  So each session gets a record under ``data_dir()/sessions/<id>.json`` holding who is
signed in and which images make up the current Classify batch, and the browser keeps a cookie
``<id>.<expires>.<HMAC-SHA256>``.  On a reload the app finds the record through the cookie.

- The cookie is signed with ``[access] session_secret`` (secrets) or, when unset, a random key
  made once in ``data_dir()/session-secret`` (mode 0600); a forged or altered cookie is ignored.
- It expires after :data:`COOKIE_LIFETIME_S` whatever happens, and the record after
  ``idle_timeout_minutes`` (``[access]``, default :data:`DEFAULT_IDLE_MINUTES`) without activity.
- The batch's images are kept once each by content hash in ``data_dir()/batches/<sha256>``, and
  deleted when no session record refers to them any more (cleared batch, sign-out, timeout).
- Signing out deletes the record, so the old cookie leads nowhere even if the browser keeps it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bloodcell_core.data.images import content_hash
from bloodcell_core.paths import data_dir
from bloodcell_core.review.auth import AuthConfigError

COOKIE_NAME = "bloodcell_session"
COOKIE_LIFETIME_S = 12 * 3600
DEFAULT_IDLE_MINUTES = 30
TOUCH_EVERY_S = 15.0  # a record's last-seen time is rewritten at most this often
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class SessionRecord:
    """What one browser session keeps across reloads."""

    session_id: str
    created: float
    seen: float
    user: str | None = None  # auth's session user (password or unverified mode), None: signed out
    mode: str | None = None
    batch: list[tuple[str, str]] = field(default_factory=list)  # (file name, sha256), upload order


def secret_key(configured: str | None, folder: Path) -> bytes:
    """``configured`` as bytes, else the random key in ``folder/session-secret`` (made on first use)."""
    if configured:
        return configured.encode("utf-8")
    path = folder / "session-secret"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode("ascii")


class SessionStore:
    """Session records and their batches' images under one folder (the app's data directory)."""

    def __init__(self, root: Path, secret: bytes, idle_s: float = DEFAULT_IDLE_MINUTES * 60,
                 clock: Callable[[], float] | None = None) -> None:
        self.sessions = root / "sessions"
        self.images = root / "batches"
        self._secret = secret
        self.idle_s = idle_s
        self._clock = clock or time.time

    # -- cookies ----------------------------------------------------------------------------

    def _signature(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def cookie_for(self, record: SessionRecord) -> str:
        payload = f"{record.session_id}.{int(record.created + COOKIE_LIFETIME_S)}"
        return f"{payload}.{self._signature(payload)}"

    def from_cookie(self, value: str | None) -> SessionRecord | None:
        """The live record a cookie names; None when it is missing, forged, expired or idle too long."""
        parts = (value or "").split(".")
        if len(parts) != 3 or not _SESSION_ID.match(parts[0]) or not parts[1].isdigit():
            return None
        if not hmac.compare_digest(self._signature(f"{parts[0]}.{parts[1]}"), parts[2]):
            return None
        if int(parts[1]) < self._clock():
            self.end(parts[0])
            return None
        return self.load(parts[0])

    # -- records ----------------------------------------------------------------------------

    def _path(self, session_id: str) -> Path:
        if not _SESSION_ID.match(session_id):
            raise ValueError("not a session id")
        return self.sessions / f"{session_id}.json"

    def create(self) -> SessionRecord:
        """A new, anonymous session (and, while at it, the end of sessions idle too long)."""
        self.sweep()
        now = self._clock()
        record = SessionRecord(secrets.token_urlsafe(32), now, now)
        self.save(record)
        return record

    def save(self, record: SessionRecord) -> None:
        self.sessions.mkdir(parents=True, exist_ok=True)
        path = self._path(record.session_id)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)))
        temporary.replace(path)  # atomic: a reader never sees half a record

    def load(self, session_id: str) -> SessionRecord | None:
        """The record, None when it does not exist or was idle too long (it is then ended)."""
        try:
            raw = json.loads(self._path(session_id).read_text())
            record = SessionRecord(**{**raw, "batch": [tuple(pair) for pair in raw.get("batch", [])]})
        except (OSError, ValueError, TypeError):
            return None
        if self._clock() - record.seen > self.idle_s:
            self.end(session_id)
            return None
        return record

    def touch(self, record: SessionRecord) -> None:
        """Note activity (written at most every :data:`TOUCH_EVERY_S`)."""
        now = self._clock()
        if now - record.seen >= TOUCH_EVERY_S:
            record.seen = now
            self.save(record)

    def end(self, session_id: str) -> None:
        """Delete the record and the batch images no other session refers to."""
        try:
            self._path(session_id).unlink(missing_ok=True)
        except ValueError:
            return
        self.collect_images()

    def sweep(self) -> None:
        """End every record idle longer than the timeout."""
        for path in self.sessions.glob("*.json") if self.sessions.exists() else []:
            self.load(path.stem)

    # -- the batch ----------------------------------------------------------------------------

    def keep_batch(self, record: SessionRecord, files: Sequence[tuple[str, bytes]]) -> None:
        """Make ``files`` the session's batch: each image stored once by content hash."""
        batch = [(name, content_hash(data)) for name, data in files]
        if batch == record.batch:
            return
        record.batch = batch
        self.save(record)  # first: another session's clean-up must see these images as wanted
        self.images.mkdir(parents=True, exist_ok=True)
        for (_name, digest), (_same, data) in zip(batch, files):
            path = self.images / digest
            if not path.exists():
                path.write_bytes(data)
        self.collect_images()

    def batch_files(self, record: SessionRecord) -> list[tuple[str, bytes]]:
        """The kept batch as (name, bytes); images that went missing are left out."""
        files = []
        for name, digest in record.batch:
            try:
                files.append((name, (self.images / digest).read_bytes()))
            except OSError:
                continue
        return files

    def clear_batch(self, record: SessionRecord) -> None:
        if record.batch:
            record.batch = []
            self.save(record)
            self.collect_images()

    def collect_images(self) -> None:
        """Delete kept images that no session record refers to any more."""
        if not self.images.exists():
            return
        wanted: set[str] = set()
        for path in self.sessions.glob("*.json") if self.sessions.exists() else []:
            try:
                wanted |= {digest for _name, digest in json.loads(path.read_text()).get("batch", [])}
            except (OSError, ValueError):
                continue
        for path in self.images.iterdir():
            if _SHA256.match(path.name) and path.name not in wanted:
                path.unlink(missing_ok=True)


def idle_minutes(secrets: Mapping[str, Any]) -> float:
    """``[access] idle_timeout_minutes`` (default 30): a positive number of minutes."""
    access = secrets.get("access") or {}
    value = access.get("idle_timeout_minutes", DEFAULT_IDLE_MINUTES) if isinstance(access, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise AuthConfigError("[access] idle_timeout_minutes must be a positive number of minutes")
    return float(value)


def session_store(secrets: Mapping[str, Any]) -> SessionStore:
    """The app's session store, configured from the secrets' ``[access]`` section."""
    access = secrets.get("access") or {}
    configured = access.get("session_secret") if isinstance(access, Mapping) else None
    root = data_dir()
    return SessionStore(root, secret_key(str(configured) if configured else None, root), idle_minutes(secrets) * 60)
