"""Run locks: one Redis lock per (connection, run kind) so two runs of a kind never overlap.

A lock expires on its own (TTL) unless its holder keeps renewing it, so a worker killed with
SIGKILL frees it within `TTL_S`; a holder on this host whose process is gone is taken over at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

log = logging.getLogger(__name__)

TTL_S = 30.0  # a dead holder blocks its connection's runs for at most this long
RENEW_EVERY_S = TTL_S / 3

# Which lock a run kind takes: the syncs share one because they advance the same cursors.
LOCK_FOR_KIND = {
    "sync_incremental": "sync",
    "sync_full": "sync",
    "reconcile": "sync",
    "score": "score",
    "writeback": "writeback",
    "webhook": "webhook",
}

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_TAKEOVER = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0
"""


def lock_key(connection_id: int, name: str) -> str:
    """The Redis key of the lock `name` for one connection."""
    return f"rapport:lock:{connection_id}:{name}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


class RunLock:
    """A renewable, owner-checked Redis lock; use `hold()` around the work."""

    def __init__(
        self,
        conn: redis.Redis,
        connection_id: int,
        name: str,
        *,
        holder: str | None = None,
        ttl_s: float = TTL_S,
    ) -> None:
        self.conn = conn
        self.key = lock_key(connection_id, name)
        self.ttl_ms = int(ttl_s * 1000)
        self.value = json.dumps(
            {"token": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "holder": holder}
        )
        self.lost = False

    def acquire(self) -> bool:
        """Take the lock if it is free, expired, or held by a process of this host that is gone."""
        if self.conn.set(self.key, self.value, nx=True, px=self.ttl_ms):
            return True
        current = self.conn.get(self.key)
        if current is None:
            return bool(self.conn.set(self.key, self.value, nx=True, px=self.ttl_ms))
        try:
            info = json.loads(current)
        except ValueError:
            return False
        if (
            info.get("host") == socket.gethostname()
            and info.get("pid") != os.getpid()
            and _process_gone(int(info["pid"]))
        ):
            log.warning("taking over %s from process %s, which is gone", self.key, info["pid"])
            return bool(self.conn.eval(_TAKEOVER, 1, self.key, current, self.value, self.ttl_ms))
        return False

    def renew(self) -> bool:
        """Push the expiry out again; False (and `lost`) if someone else holds it now."""
        ok = bool(self.conn.eval(_RENEW, 1, self.key, self.value, self.ttl_ms))
        if not ok:
            self.lost = True
        return ok

    def release(self) -> None:
        """Give the lock up if it is still ours."""
        self.conn.eval(_RELEASE, 1, self.key, self.value)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (host, pid, holder), or None."""
        current = self.conn.get(self.key)
        return json.loads(current) if current else None

    def remaining_s(self) -> float:
        """Seconds until the lock expires if its holder stops renewing it (0 when free)."""
        pttl = int(self.conn.pttl(self.key))
        return max(pttl, 0) / 1000

    @contextmanager
    def kept_alive(self, on_renew: Callable[[], None] | None = None) -> Iterator[RunLock]:
        """Renew the (already acquired) lock in a background thread until the block ends, then release."""
        stop = threading.Event()

        def renew_loop() -> None:
            while not stop.wait(self.ttl_ms / 3000):
                try:
                    if not self.renew():
                        log.error("lost %s: another holder took it; stopping renewal", self.key)
                        return
                    if on_renew is not None:
                        on_renew()
                except Exception:  # noqa: BLE001 - a failed renewal must not kill the work; the TTL decides
                    log.exception("could not renew %s", self.key)

        thread = threading.Thread(target=renew_loop, name=f"renew {self.key}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
            self.release()
