"""Durable fair-share usage: what each VO, group and user has consumed, kept in SQLite.

Fair share only works if the scheduler remembers usage across its own restarts, crashes and
upgrades; a site that loses a week of accounting hands the heaviest VO a week of unfair
priority. So every finished job is written in its own committed transaction (WAL journal,
``synchronous=FULL``): once :meth:`UsageStore.record` returns, that job survives ``kill -9``
of the scheduler and a power cut of the host.

What is stored
    * ``job_usage`` -- one row per finished job: job id, entity path (VO, group, user), the
      already weighted amount (see :func:`vmsched.policies.fairshare.usage_amount`) and the
      time it was charged. This is the ledger: the source of truth, and what makes recording
      idempotent (a batch server may report the same job end twice).
    * ``decayed_usage`` / ``decay_progress`` -- per entity and per half-life, the raw pair
      (usage, last update) folded from the ledger. This is a cache: it can always be rebuilt
      from the ledger, which is why the half-life is a parameter of :meth:`UsageStore.usage`
      rather than of the file, and an admin may change the half-life in the policy without
      losing history.

Decay
    Usage halves every ``half_life_s`` seconds: ``u(now) = u(t0) * 2 ** (-(now - t0) / h)``.
    A new amount is folded as "decay to its time, then add", so the result is the same sum
    ``sum(a_i * 2 ** (-(now - t_i) / h))`` whether the cycle reads usage every minute or once
    a day. Time never runs backwards for usage: asking about a moment before the last charge
    gives the usage at the last charge, and a charge dated before the last update is decayed
    to that update, so a late job-end report cannot inflate anyone's usage.

The schema version is kept in ``PRAGMA user_version`` and the file is marked as ours with
``PRAGMA application_id``, so a foreign or newer file is refused rather than modified.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vmsched.errors import show

__all__ = ["UsageStore", "UsageStoreError", "decay_factor", "decayed_usage", "SCHEMA_VERSION"]

#: Bumped whenever the tables change shape; an older vmsched refuses a newer file.
SCHEMA_VERSION = 1

#: "vmsu" in ASCII: marks an SQLite file as a vmsched usage store.
APPLICATION_ID = 0x766D7375

#: Beyond this many half-lives any double has decayed to zero; clamping keeps exp2 finite
#: for absurd gaps (1e12 s at a 1 ms half-life) instead of raising OverflowError.
_MAX_HALVINGS = 2000.0

#: The scheduler asks for one half-life in normal use; a few more are kept so that an admin
#: trying another value does not throw away the cache of the configured one.
_CACHED_HALF_LIVES = 4

_TABLES = ("job_usage", "decayed_usage", "decay_progress")

_SCHEMA = (
    """
    CREATE TABLE job_usage (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        entity TEXT NOT NULL,
        amount REAL NOT NULL CHECK (amount >= 0),
        at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE decayed_usage (
        half_life_s REAL NOT NULL,
        entity TEXT NOT NULL,
        usage REAL NOT NULL,
        last_update REAL NOT NULL,
        PRIMARY KEY (half_life_s, entity)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE decay_progress (
        half_life_s REAL PRIMARY KEY,
        through_seq INTEGER NOT NULL,
        used_order INTEGER NOT NULL
    )
    """,
)


class UsageStoreError(Exception):
    """The usage file cannot be used. The message is one line naming the file and the problem,
    fit to print to an admin as is."""


def decay_factor(elapsed_s: float, half_life_s: float) -> float:
    """``2 ** (-elapsed_s / half_life_s)`` that never overflows, never returns NaN and never
    exceeds 1 (a negative elapsed time means "no time has passed", not growth)."""
    if not elapsed_s > 0.0:  # also catches NaN
        return 1.0
    halvings = elapsed_s / half_life_s
    if not halvings < _MAX_HALVINGS:  # also catches inf and NaN
        return 0.0
    return math.exp2(-halvings)


def decayed_usage(usage: float, last_update: float, now: float, half_life_s: float,
                  floor: float = 0.0) -> float:
    """Usage charged up to ``last_update`` as seen at ``now``, never below ``floor``."""
    gap = now - last_update
    return max(floor, usage * decay_factor(gap, half_life_s))


def _check_finite(name: str, value: Any, *, positive: bool = False, non_negative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {show(value)}")
    # compared before float(): an int past a float's range is refused, not an OverflowError
    if not (math.isfinite(value) if isinstance(value, float) else abs(value) <= sys.float_info.max):
        raise ValueError(f"{name} must be finite, got {show(value)}")
    number = float(value)
    if positive and not number > 0.0:
        raise ValueError(f"{name} must be > 0, got {show(value)}")
    if non_negative and number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {show(value)}")
    return number


def _check_path(path: Any, where: str) -> tuple[str, ...]:
    if (not isinstance(path, tuple) or not path
            or not all(isinstance(part, str) and part for part in path)):
        raise ValueError(f"{where}: entity path must be a non-empty tuple of non-empty names "
                         f"such as ('atlas', 'prod', 'alice'), got {path!r}")
    return path


@functools.lru_cache(maxsize=4096)
def _encode_path(path: tuple[str, ...]) -> str:
    # JSON keeps any character in a name unambiguous (a VO called "a/b" stays one name).
    # Cached: a site has a few hundred users, and every job end encodes one of them.
    return json.dumps(list(path), ensure_ascii=False, separators=(",", ":"))


class UsageStore:
    """Fair-share usage in one SQLite file, safe against ``kill -9`` at any moment.

    Open one per scheduler process; several processes may open the same file (SQLite locks),
    e.g. a reporting tool next to the scheduler. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 30.0):
        self._path = Path(path)
        self._conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self._path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(f"cannot open: {exc}") from None
        try:
            self._open(conn)
        except UsageStoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(_describe(exc)) from None
        self._conn = conn

    # -- opening -------------------------------------------------------------------------

    def _open(self, conn: sqlite3.Connection) -> None:
        # The first statement reads the header, so a file that is not SQLite fails here.
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        # ":memory:" is for dry runs (explain, simulate): nothing there is meant to last.
        if str(mode).lower() != "wal" and not (str(self._path) == ":memory:" and mode == "memory"):
            raise self._error(f"cannot use write-ahead logging (journal mode stays {mode!r}); "
                              "put the usage file on a local filesystem")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._check_or_create_schema(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _check_or_create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if version == 0 and app_id == 0 and not tables:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if app_id != APPLICATION_ID:
            raise self._error("is an SQLite database but not a vmsched usage store")
        if version > SCHEMA_VERSION:
            raise self._error(f"was written by a newer vmsched (schema version {version}, "
                              f"this one reads up to {SCHEMA_VERSION})")
        if version < 1:
            raise self._error(f"has unknown schema version {version}")
        missing = [name for name in _TABLES if name not in tables]
        if missing:
            raise self._error(f"is damaged: missing table(s) {', '.join(missing)}")

    # -- helpers -------------------------------------------------------------------------

    def _error(self, what: str) -> UsageStoreError:
        return UsageStoreError(f"usage store {str(self._path)!r}: {what}")

    @property
    def path(self) -> Path:
        return self._path

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self._error("is closed")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite failure becomes a one-line UsageStoreError.

        ``durable=False`` is for the decay cache only: it can be rebuilt from the ledger, so
        its commits need not wait for the disk. Ledger commits always do.
        """
        conn = self._connection()
        try:
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise self._error(_describe(exc)) from None

    @contextlib.contextmanager
    def _autocommit(self) -> Iterator[sqlite3.Connection]:
        """The connection for single statements: reads, and a write that is one statement
        (its own transaction); any SQLite failure becomes a one-line UsageStoreError."""
        conn = self._connection()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._error(_describe(exc)) from None

    def _decode_path(self, text: str) -> tuple[str, ...]:
        try:
            parts = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            parts = None
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p for p in parts):
            raise self._error(f"is damaged: bad entity {show(text)}")
        return tuple(parts)

    # -- public API ----------------------------------------------------------------------

    def record(self, job_id: str, path: tuple[str, ...], amount: float, at: float) -> bool:
        """Charge ``amount`` (already weighted) to the entity ``path`` at time ``at``.

        Returns False, changing nothing, if this job id was recorded before: servers re-send
        job ends after their own restarts, and charging twice would be silently unfair. When
        this returns, the record is on disk.
        """
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"job id must be a non-empty string, got {job_id!r}")
        where = f"job {job_id}"
        _check_path(path, where)
        amount = _check_finite(f"{where}: usage amount", amount, non_negative=True)
        at = _check_finite(f"{where}: time", at)
        # One statement is its own transaction in autocommit mode, as durable as an explicit
        # BEGIN/COMMIT around it and a third of the calls (a replay records 100,000 ends).
        with self._autocommit() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO job_usage (job_id, entity, amount, at) VALUES (?, ?, ?, ?)",
                (job_id, _encode_path(path), amount, at))
            return cursor.rowcount == 1

    def has_job(self, job_id: str) -> bool:
        """Whether this job's usage has been recorded."""
        with self._autocommit() as conn:
            row = conn.execute("SELECT 1 FROM job_usage WHERE job_id = ?", (job_id,)).fetchone()
        return row is not None

    def jobs(self) -> frozenset[str]:
        """Every recorded job id (for audits and tests; the set grows with the ledger)."""
        with self._autocommit() as conn:
            return frozenset(row[0] for row in conn.execute("SELECT job_id FROM job_usage"))

    def usage(self, now: float, half_life_s: float, floor: float = 0.0) -> dict[tuple[str, ...], float]:
        """Decayed usage of every entity ever charged, as seen at ``now``.

        Keys are the paths given to :meth:`record`; an entity whose usage decayed below
        ``floor`` reports ``floor``.
        """
        now = _check_finite("now", now)
        half_life_s = _check_finite("half_life_s", half_life_s, positive=True)
        floor = _check_finite("floor", floor, non_negative=True)
        raw = self._fold_ledger(half_life_s)
        return {path: decayed_usage(u, t0, now, half_life_s, floor) for path, (u, t0) in raw.items()}

    def _fold_ledger(self, half_life_s: float) -> dict[tuple[str, ...], tuple[float, float]]:
        """Bring the (usage, last_update) cache for this half-life up to date with the ledger."""
        with self._transaction(durable=False) as conn:
            progress = conn.execute(
                "SELECT through_seq FROM decay_progress WHERE half_life_s = ?", (half_life_s,)).fetchone()
            through = progress[0] if progress else 0
            raw: dict[str, tuple[float, float]] = {}
            if progress:
                raw = {entity: (u, t0) for entity, u, t0 in conn.execute(
                    "SELECT entity, usage, last_update FROM decayed_usage WHERE half_life_s = ?",
                    (half_life_s,))}
            changed: set[str] = set()
            for seq, entity, amount, at in conn.execute(
                    "SELECT seq, entity, amount, at FROM job_usage WHERE seq > ? ORDER BY seq", (through,)):
                through = seq
                if entity in raw:
                    u, t0 = raw[entity]
                    if at >= t0:  # decay to the new charge, then add it
                        raw[entity] = (u * decay_factor(at - t0, half_life_s) + amount, at)
                    else:  # a late report: decay the charge to the last update instead
                        raw[entity] = (u + amount * decay_factor(t0 - at, half_life_s), t0)
                else:
                    raw[entity] = (amount, at)
                changed.add(entity)
            if changed:
                conn.executemany(
                    "INSERT OR REPLACE INTO decayed_usage (half_life_s, entity, usage, last_update) "
                    "VALUES (?, ?, ?, ?)",
                    [(half_life_s, e, raw[e][0], raw[e][1]) for e in changed])
            if changed or not progress:
                order = conn.execute("SELECT COALESCE(MAX(used_order), 0) + 1 FROM decay_progress").fetchone()[0]
                conn.execute(
                    "INSERT OR REPLACE INTO decay_progress (half_life_s, through_seq, used_order) VALUES (?, ?, ?)",
                    (half_life_s, through, order))
                stale = [row[0] for row in conn.execute(
                    "SELECT half_life_s FROM decay_progress ORDER BY used_order DESC LIMIT -1 OFFSET ?",
                    (_CACHED_HALF_LIVES,))]
                for old in stale:
                    conn.execute("DELETE FROM decayed_usage WHERE half_life_s = ?", (old,))
                    conn.execute("DELETE FROM decay_progress WHERE half_life_s = ?", (old,))
        return {self._decode_path(entity): pair for entity, pair in raw.items()}

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> "UsageStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"UsageStore({str(self._path)!r}, {state})"


def _describe(exc: sqlite3.Error) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "not a database" in text or "malformed" in text:
        return f"is not a usable SQLite database ({text})"
    return text
