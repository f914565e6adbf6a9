"""Run locks against the real Redis: one holder at a time across processes, freed when the holder dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import redis

from connector.locks import RunLock, lock_key

FORK = multiprocessing.get_context("fork")


def _contend(url: str, rounds: int) -> None:
    """Take the lock `rounds` times, logging enter/exit so the parent can check for overlap."""
    conn = redis.Redis.from_url(url)
    done = 0
    while done < rounds:
        lock = RunLock(conn, 7, "sync", holder=f"pid-{os.getpid()}", ttl_s=5)
        if not lock.acquire():
            time.sleep(0.005)
            continue
        with lock.kept_alive():
            conn.rpush("log", f"enter {os.getpid()}")
            time.sleep(0.02)
            conn.rpush("log", f"exit {os.getpid()}")
        done += 1


def _hold(url: str, ttl_s: float) -> None:
    conn = redis.Redis.from_url(url)
    lock = RunLock(conn, 7, "sync", ttl_s=ttl_s)
    assert lock.acquire()
    with lock.kept_alive():
        conn.rpush("ready", "1")
        time.sleep(60)


def _start_holder(url: str, conn: redis.Redis, ttl_s: float) -> multiprocessing.process.BaseProcess:
    proc = FORK.Process(target=_hold, args=(url, ttl_s))
    proc.start()
    assert conn.blpop(["ready"], timeout=10), "the holder process did not take the lock"
    return proc


def test_two_processes_never_hold_the_lock_together(redis_url: str, redis_conn: redis.Redis) -> None:
    procs = [FORK.Process(target=_contend, args=(redis_url, 15)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    log = [e.decode() for e in redis_conn.lrange("log", 0, -1)]
    assert len(log) == 60
    holder = None
    for entry in log:
        what, pid = entry.split()
        if what == "enter":
            assert holder is None, f"{pid} entered while {holder} held the lock"
            holder = pid
        else:
            assert holder == pid
            holder = None
    assert {e.split()[1] for e in log} == {str(p.pid) for p in procs}, "both processes got the lock in turn"
    assert not redis_conn.exists(lock_key(7, "sync"))


def test_a_sigkilled_holder_frees_the_lock_after_its_ttl(redis_url: str, redis_conn: redis.Redis) -> None:
    proc = _start_holder(redis_url, redis_conn, ttl_s=1.0)
    time.sleep(1.5)  # longer than the TTL: the holder's renewals keep it
    assert redis_conn.exists(lock_key(7, "sync"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert redis_conn.exists(lock_key(7, "sync")), "nothing frees it at once on its own"
    deadline = time.monotonic() + 5
    while redis_conn.exists(lock_key(7, "sync")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not redis_conn.exists(lock_key(7, "sync"))
    other = RunLock(redis_conn, 7, "sync")
    assert other.acquire()
    other.release()


def test_a_dead_holder_on_this_host_is_taken_over_at_once(redis_url: str, redis_conn: redis.Redis) -> None:
    proc = _start_holder(redis_url, redis_conn, ttl_s=30)
    contender = RunLock(redis_conn, 7, "sync")
    assert not contender.acquire(), "a live holder keeps its lock"
    assert contender.holder()["pid"] == proc.pid
    assert contender.remaining_s() > 20
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert contender.acquire()
    assert contender.holder()["pid"] == os.getpid()
    contender.release()


def test_only_the_holder_releases_or_renews(redis_conn: redis.Redis) -> None:
    first = RunLock(redis_conn, 3, "score")
    second = RunLock(redis_conn, 3, "score")
    assert first.acquire()
    assert not second.acquire()
    second.release()
    assert redis_conn.exists(lock_key(3, "score"))
    assert not second.renew() and second.lost
    assert first.renew()
    first.release()
    assert second.acquire()
    assert RunLock(redis_conn, 4, "score").acquire(), "locks are per connection"
    assert RunLock(redis_conn, 3, "writeback").acquire(), "and per kind"
