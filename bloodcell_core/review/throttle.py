"""Throttling failed password sign-ins, per user name and per browser session.

After each failure the user name *and* the session must wait before the next attempt: 1 s,
then 2, 4, 8 ... (``base_delay_s * 2**(failures - 1)``); after ``lock_after`` failures in a row
they are locked out for ``lock_s``.  Attempts made while waiting are refused without checking
the password (so they cost the attacker time, not the server a bcrypt), and count as nothing.
Unknown user names are throttled exactly like real ones, so the throttle doesn't tell which exist.
A success clears both counters; failures older than ``forget_s`` are forgotten.

Failures are logged (logger ``bloodcell_core.sign_in``) with the user name as typed (repr, so no
line breaks get in) and a short session tag -- never the password.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

LOG = logging.getLogger("bloodcell_core.sign_in")
DEFAULT_LOCK_AFTER = 5
DEFAULT_LOCK_MINUTES = 15.0
MAX_TRACKED = 10_000  # user names + sessions remembered at once (oldest forgotten first)


def _session_tag(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8")).hexdigest()[:8]


class SignInThrottle:
    """Failure counts per user name and per session; thread-safe (one per app process)."""

    def __init__(self, lock_after: int = DEFAULT_LOCK_AFTER, lock_s: float = DEFAULT_LOCK_MINUTES * 60,
                 base_delay_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock_after, self.lock_s, self.base_delay_s = lock_after, lock_s, base_delay_s
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (in a row, last time)
        self._lock = threading.Lock()

    @property
    def forget_s(self) -> float:
        return max(self.lock_s, 3600.0)

    def configure(self, lock_after: int, lock_s: float) -> None:
        self.lock_after, self.lock_s = lock_after, lock_s

    def delay_s(self, failures: int) -> float:
        """How long to wait after ``failures`` failures in a row."""
        if failures <= 0:
            return 0.0
        if failures >= self.lock_after:
            return self.lock_s
        return self.base_delay_s * 2 ** (failures - 1)

    @staticmethod
    def _keys(username: str, session: str) -> tuple[str, str]:
        return f"user:{str(username or '').strip().lower()}", f"session:{session}"

    def _entry(self, key: str, now: float) -> tuple[int, float]:
        failures, last = self._failures.get(key, (0, 0.0))
        if failures and now - last > self.forget_s:
            self._failures.pop(key, None)
            return 0, 0.0
        return failures, last

    def wait_s(self, username: str, session: str) -> float:
        """Seconds before this user name in this session may try again (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [last + self.delay_s(failures) - now
                     for failures, last in (self._entry(key, now) for key in self._keys(username, session))]
        return max(0.0, *waits)

    def failed(self, username: str, session: str) -> int:
        """Count a wrong password; returns the user name's failures in a row."""
        now = self._clock()
        counts = []
        with self._lock:
            for key in self._keys(username, session):
                failures = self._entry(key, now)[0] + 1
                self._failures[key] = (failures, now)
                self._failures.move_to_end(key)
                counts.append(failures)
            while len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)
        locked = max(counts) >= self.lock_after
        LOG.warning("sign-in failed: user name %r, session %s, %d failure(s) in a row%s", str(username)[:64],
                    _session_tag(session), counts[0], f"; locked for {self.lock_s / 60:.0f} min" if locked else "")
        return counts[0]

    def refused(self, username: str, session: str, wait_s: float) -> None:
        LOG.warning("sign-in refused while throttled: user name %r, session %s, %.0f s to wait",
                    str(username)[:64], _session_tag(session), wait_s)

    def succeeded(self, username: str, session: str) -> None:
        with self._lock:
            for key in self._keys(username, session):
                self._failures.pop(key, None)
        LOG.info("sign-in: user name %r, session %s", str(username)[:64], _session_tag(session))

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


def throttle_settings(secrets: Mapping[str, Any]) -> tuple[int, float]:
    """(``[access] sign_in_lock_after``, ``sign_in_lock_minutes`` in seconds), validated."""
    from bloodcell_core.review.auth import AuthConfigError

    access = secrets.get("access") or {}
    access = access if isinstance(access, Mapping) else {}
    lock_after = access.get("sign_in_lock_after", DEFAULT_LOCK_AFTER)
    minutes = access.get("sign_in_lock_minutes", DEFAULT_LOCK_MINUTES)
    if isinstance(lock_after, bool) or not isinstance(lock_after, int) or lock_after < 1:
        raise AuthConfigError("[access] sign_in_lock_after must be a whole number of failures, at least 1")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
        raise AuthConfigError("[access] sign_in_lock_minutes must be a positive number of minutes")
    return lock_after, float(minutes) * 60


SIGN_IN_THROTTLE = SignInThrottle()  # the app process's one throttle (sign-ins from every session)
