"""Background services started and stopped by recorded PID, never by process name.

Every service runs in its own session (``setsid``) so that stopping its process group stops the
children it spawned (Ray's raylet and workers, Airflow's scheduler, ...) and nothing else.
A record keeps the PID and its start time, so a PID reused by the OS is never signalled.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A service could not be started or reached; the message says which and why."""


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    pid: int
    started_at: float
    log: str
    url: str
    grace_s: float = 30.0
    """How long ``stop`` waits after SIGTERM before SIGKILL."""

    def as_dict(self) -> dict:
        return asdict(self)

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.started_at) < 1.0 and proc.is_running()
        except psutil.NoSuchProcess:
            return False


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()


def free_port(low: int = 20000, high: int = 29999) -> int:
    """A port free now, for a service about to start (tests, benchmarks).

    Not an ephemeral port (``bind(0)``): the kernel hands those out again to every outgoing
    connection and to the components Ray starts on random ports, so one could be taken before
    our service binds it (a Ray head died that way, its client server unable to bind). The
    default range lies below the kernel's ephemeral range (32768+), above Ray's worker ports
    (10002-19999) and below Serve's replica ports (30000+); never the same port twice per
    process."""
    import random

    candidates = [p for p in range(low, high + 1) if p not in _handed_out]
    random.shuffle(candidates)
    for port in candidates[:500]:
        if port_is_free("127.0.0.1", port) and port_is_free("0.0.0.0", port):
            _handed_out.add(port)
            return port
    raise StackError(f"no free port in {low}-{high}")


def require_free_ports(host: str, ports: dict[str, int]) -> None:
    taken = [f"{name}={port}" for name, port in ports.items() if not port_is_free(host, port)]
    if taken:
        raise StackError(
            f"port(s) already in use on {host}: {', '.join(taken)}; stop whatever holds them "
            "or choose others with the CONVEYOR_*_PORT variables"
        )


RAY_GRACE_S = 10.0
"""A Ray node's stop grace. ``ray start --block``, its GCS and Serve's actors (draining for
Serve's 30 s minimum in HAProxy mode) outlast SIGTERM, and a local node keeps nothing worth
waiting for: 30 s only delayed every stop. Ray's own ``ray stop`` waits 16 s."""


def spawn(
    name: str,
    argv: list[str],
    log_path: Path,
    env: dict,
    url: str,
    cwd: Path | None = None,
    grace_s: float = 30.0,
):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return proc, ServiceRecord(
        name=name,
        pid=proc.pid,
        started_at=psutil.Process(proc.pid).create_time(),
        log=str(log_path),
        url=url,
        grace_s=grace_s,
    )


def start_service(
    name: str,
    argv: list[str],
    log_path: Path,
    env: dict,
    url: str,
    ready,
    timeout: float,
    *,
    what: str | None = None,
    cwd: Path | None = None,
    grace_s: float = 30.0,
    started=None,
) -> ServiceRecord:
    """Spawn a service and wait until ``ready()`` is true.

    The record goes to ``started(record)`` before the wait, so a caller can persist it and a
    later ``down`` finds the process even if this one dies waiting. A start that fails (not
    ready in time, refused, interrupted) stops the process it spawned, by PID, before raising:
    nothing is left holding the service's ports."""
    proc, record = spawn(name, argv, log_path, env, url, cwd=cwd, grace_s=grace_s)
    if started is not None:
        started(record)
    try:
        wait_until(ready, what or name, timeout, proc, log_path)
    except BaseException:
        stop(record)
        raise
    return record


def wait_until(
    check,
    what: str,
    timeout: float,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``check()`` until it is true; fail fast if ``proc`` died or ``check`` raises
    ``StackError`` (a cause waiting will not fix, such as a refused credential); never hang
    past timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = _tail(log_path) if log_path else ""
            raise StackError(f"{what} exited with code {proc.returncode} while starting{tail}")
        try:
            if check():
                return
        except StackError:  # the check found a cause that waiting will not fix
            raise
        except Exception:  # the service is not answering yet
            pass
        time.sleep(0.5)
    raise StackError(f"{what} not ready after {timeout:.0f}s{_tail(log_path) if log_path else ''}")


def _tail(log_path: Path | None, lines: int = 15) -> str:
    if not log_path or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; see {log_path}:\n" + "\n".join(text)


def stop(record: ServiceRecord, timeout: float | None = None) -> bool:
    """Stop the service and everything it spawned; True if it was running. SIGTERM, then
    SIGKILL after ``timeout`` (the record's ``grace_s`` unless given).

    "Everything it spawned" is its process group plus all its descendants, collected before any
    signal: some children (Ray's worker processes) move to process groups of their own.
    """
    if not record.alive():
        return False
    root = psutil.Process(record.pid)
    group = os.getpgid(record.pid)
    members = {p.pid: p for p in psutil.process_iter() if _pgid(p) == group}
    members.update({p.pid: p for p in root.children(recursive=True)})
    members[root.pid] = root
    for proc in members.values():
        _signal(proc, signal.SIGTERM)
    grace = record.grace_s if timeout is None else timeout
    _, alive = psutil.wait_procs(list(members.values()), timeout=grace)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    return True


def stop_all(records: Iterable[ServiceRecord]) -> list[str]:
    """Stop independent services at once, each as ``stop`` does: the wait is the slowest
    one's grace, not the sum of them. The names of those that were running."""
    records = list(records)
    if not records:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(records)) as pool:
        running = list(pool.map(stop, records))
    return [record.name for record, was in zip(records, running, strict=True) if was]


def replica_processes(app: str, deployment: str) -> list[psutil.Process]:
    """This node's processes of a Serve deployment's replicas (Ray titles each
    ``ray::ServeReplica:<app>:<deployment>``): what to watch or kill by PID."""
    title = f"ServeReplica:{app}:{deployment}"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(title in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:  # it ended while being listed
            continue
    return found


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, psutil.Error):
        return None
