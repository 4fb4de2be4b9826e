"""Per-token and per-IP token-bucket rate limits, shared by every worker of a hub.

Each caller (``token:<id>`` for a valid token, ``ip:<address>`` otherwise) has a bucket of
``burst`` requests that refills at ``per_second``. Buckets live in ``ratelimit.sqlite`` in the
hub folder (WAL): taking a request is **one** ``INSERT … ON CONFLICT DO UPDATE … WHERE …
RETURNING`` statement, atomic in SQLite, so gunicorn's forked workers share each bucket
without a lock of their own. A refused request gets the seconds until a request is
available again (the ``Retry-After`` of the 429).

Settings (``hub.json`` key ``rate_limit``, overridden by ``DLV_HUB_RATE_LIMIT``, which ``dlv
serve --rate-limit`` sets): ``{"enabled", "per_second", "burst", "anonymous_per_second",
"anonymous_burst"}``; the environment form is ``off`` or ``RATE/BURST[,ANON_RATE/ANON_BURST]``.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provdb.errors import InvalidInput

DB_FILE = "ratelimit.sqlite"
_SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL, updated REAL)"
#: Take one request from a bucket: refill by the elapsed time (capped at the burst), then
#: subtract one, only if at least one is there. No row comes back when the bucket is empty.
_TAKE = """
INSERT INTO buckets (key, tokens, updated) VALUES (:key, :burst - 1, :now)
ON CONFLICT (key) DO UPDATE SET
    tokens = min(:burst, tokens + max(0, :now - updated) * :rate) - 1, updated = :now
WHERE min(:burst, tokens + max(0, :now - updated) * :rate) >= 1
RETURNING tokens
"""


@dataclass(frozen=True)
class Limits:
    """A hub's rate limits (requests per second and burst, for tokens and for anonymous IPs).

    The defaults are far above what a person or a CI job does (a pull of a large model is a few
    dozen requests) and stop a runaway loop or a token-guessing client."""

    enabled: bool = True
    per_second: float = 50.0
    burst: float = 1000.0
    anonymous_per_second: float = 20.0
    anonymous_burst: float = 400.0

    @classmethod
    def from_config(cls, value: Any, env: str | None = None) -> Limits:
        """From ``hub.json``'s ``rate_limit`` object, then the environment string ``env``."""
        limits = cls()
        if value is not None:
            if not isinstance(value, dict) or set(value) - set(asdict(limits)):
                raise InvalidInput(f"hub.json: rate_limit must be an object of {asdict(limits)}")
            limits = cls(**{**asdict(limits), **value})
        if env:
            limits = limits.parse(env)
        if limits.enabled and min(limits.per_second, limits.anonymous_per_second) <= 0:
            raise InvalidInput("rate limits must be positive (or disabled)")
        if limits.enabled and min(limits.burst, limits.anonymous_burst) < 1:
            raise InvalidInput("a rate limit's burst must be at least 1")
        return limits

    def parse(self, text: str) -> Limits:
        """``off``, ``on`` or ``RATE/BURST[,ANON_RATE/ANON_BURST]`` applied to these limits."""
        text = text.strip().lower()
        if text in ("off", "0", "false", "no"):
            return Limits(**{**asdict(self), "enabled": False})
        if text in ("on", "1", "true", "yes"):
            return Limits(**{**asdict(self), "enabled": True})
        try:
            parts = [tuple(float(x) for x in p.split("/")) for p in text.split(",")]
            if len(parts) > 2 or any(len(p) != 2 for p in parts):
                raise ValueError(text)
        except ValueError:
            raise InvalidInput(
                f"rate limit {text[:40]!r}: expected off or RATE/BURST[,ANON_RATE/ANON_BURST]"
            ) from None
        (rate, burst), (arate, aburst) = parts[0], parts[-1]
        return Limits(True, rate, burst, arate, aburst)


class RateLimiter:
    """The buckets of one hub folder."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.path = root / DB_FILE
        self.limits = limits
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():  # one per process, after the fork
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")  # buckets are soft state: losing one is fine
            db.execute(_SCHEMA)
            self._db, self._pid = db, os.getpid()
        return self._db

    def take(self, key: str, anonymous: bool) -> float | None:
        """Take one request from ``key``'s bucket: ``None`` when allowed, else the seconds
        until the next request would be (at least 1)."""
        lim = self.limits
        if not lim.enabled:
            return None
        rate = lim.anonymous_per_second if anonymous else lim.per_second
        burst = lim.anonymous_burst if anonymous else lim.burst
        now = time.time()
        args = {"key": key, "burst": burst, "rate": rate, "now": now}
        db = self._conn()
        if db.execute(_TAKE, args).fetchone() is not None:
            return None
        row = db.execute("SELECT tokens, updated FROM buckets WHERE key = ?", (key,)).fetchone()
        tokens = min(burst, row[0] + max(0.0, now - row[1]) * rate) if row else 0.0
        return float(max(1, math.ceil((1 - tokens) / rate)))
