"""A running Rapport stack for benchmarks: a CRM sandbox, the web app (gunicorn) and RQ workers, each
its own process on this machine, sharing a scratch PostgreSQL database and a reserved Redis db."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import psutil
import redis

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reserve_redis_db(base_url: str) -> tuple[str, str]:
    """A Redis db index no other run uses (RQ's keys cannot be prefixed); returns (url, lock token)."""
    root = base_url.rsplit("/", 1)[0] if base_url.count("/") > 2 else base_url
    admin = redis.Redis.from_url(root + "/0")
    token = uuid.uuid4().hex
    for index in range(15, 0, -1):
        if admin.set(f"rapport:test-db-lock:{index}", token, nx=True, ex=3 * 3600):
            conn = redis.Redis.from_url(f"{root}/{index}")
            conn.flushdb()
            return f"{root}/{index}", token
    raise RuntimeError("every Redis db index 1-15 is reserved by another run")


def release_redis_db(url: str, token: str) -> None:
    """Flush and free a db reserved by `reserve_redis_db`."""
    root, index = url.rsplit("/", 1)
    redis.Redis.from_url(url).flushdb()
    admin = redis.Redis.from_url(root + "/0")
    if admin.get(f"rapport:test-db-lock:{index}") == token.encode():
        admin.delete(f"rapport:test-db-lock:{index}")


class Stack:
    """Processes started for one benchmark; stopped (by pid) when the stack closes."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def spawn(self, name: str, args: Sequence[str], *, stdout_pipe: bool = False,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process (with `env` over the stack's); its output goes to a log file in the work directory (or a pipe)."""
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc = subprocess.Popen(list(args), env={**self.env, **(env or {})},
                                stdout=subprocess.PIPE if stdout_pipe else log, stderr=log, start_new_session=True)
        self.procs[name] = proc
        return proc

    def rapport(self, *args: str, timeout: float = 600) -> str:
        """Run a `rapport` command to completion; its stdout (raises with its stderr on failure)."""
        done = subprocess.run([str(BIN / "rapport"), *args], env=self.env, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"rapport {' '.join(args[:2])} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout.decode()

    def sandbox(self, kind: str, size: str, seed: int, webhook_url: str, timeout: float = 900) -> dict[str, Any]:
        """Start `rapport sandbox KIND` and return the JSON line it prints."""
        proc = self.spawn(f"sandbox-{kind}", [str(BIN / "rapport"), "sandbox", kind, "--size", size, "--seed",
                                               str(seed), "--webhook-url", webhook_url], stdout_pipe=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"the {kind} sandbox did not start: see {self.workdir}/sandbox-{kind}.log")
        return json.loads(line)

    def web(self, port: int) -> None:
        """Serve the web app with the Procfile's own `web` command (gunicorn), and wait for /healthz."""
        procfile = Path(__file__).resolve().parent.parent / "Procfile"
        line = dict(ln.split(": ", 1) for ln in procfile.read_text().splitlines() if ": " in ln)["web"]
        env = {"HOST": "127.0.0.1", "PORT": str(port), "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"}
        self.spawn("web", ["sh", "-c", f"exec {line}"], env=env)
        _wait_http(f"http://127.0.0.1:{port}/healthz", 60)

    def workers(self, n: int) -> None:
        """Start n `rapport worker` processes."""
        for i in range(n):
            self.spawn(f"worker-{i}", [str(BIN / "rapport"), "worker"])

    def rss_mb(self) -> float:
        """The largest resident memory of any process of the stack (children included), in MB."""
        peak = 0.0
        for proc in self.procs.values():
            try:
                p = psutil.Process(proc.pid)
                family = [p, *p.children(recursive=True)]
                peak = max(peak, max(q.memory_info().rss for q in family) / 2**20)
            except psutil.Error:
                continue
        return peak

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL), by pid."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()


def _wait_http(url: str, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
