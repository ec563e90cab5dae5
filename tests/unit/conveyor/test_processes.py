import socket
import subprocess
import sys
import time

import psutil
import pytest

from conveyor.processes import (
    StackError,
    free_port,
    require_free_ports,
    spawn,
    stop,
    stop_all,
    wait_until,
)

TREE = (
    "import subprocess, sys, time;"
    " subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
)
# The grandchild moves to its own session, as Ray's workers do.
CHILD = "import os, time; os.setsid(); time.sleep(60)"


def test_stop_ends_the_service_and_its_descendants_but_nothing_else(tmp_path):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    argv = [sys.executable, "-c", TREE.format(child=CHILD)]
    proc, record = spawn("tree", argv, tmp_path / "tree.log", {}, url="")
    spawned = [psutil.Process(proc.pid)]
    try:
        for _ in range(50):
            if psutil.Process(proc.pid).children(recursive=True):
                break
            time.sleep(0.1)
        spawned = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(spawned) == 2
        assert stop(record, timeout=10)
        proc.wait(timeout=10)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in spawned)
        assert bystander.poll() is None, "a process we did not start was stopped"
        assert not stop(record), "stopping twice must be a no-op"
    finally:
        # Only what this test started: the session's Ray head and MLflow are children of this
        # pytest process too, and must outlive this test.
        bystander.kill()
        for p in spawned:
            if p.is_running():
                p.kill()


STUBBORN = """
import signal, sys, time
def noted(*_):
    with open(sys.argv[1], "a") as out:
        out.write(f"{time.monotonic()}\\n")
signal.signal(signal.SIGTERM, noted)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(60)
"""


def test_stop_all_signals_every_service_before_waiting_for_any(tmp_path):
    """Services that outlast SIGTERM are killed when their grace ends; stopped together, all
    are signalled at once (one after another, each would wait for the one before it to be
    killed, a grace apart)."""
    grace = 2.0
    started = [
        spawn(
            f"s{n}",
            [sys.executable, "-c", STUBBORN, str(tmp_path / f"s{n}")],
            tmp_path / f"s{n}.log",
            {},
            url="",
            grace_s=grace,
        )
        for n in range(3)
    ]
    records = [record for _, record in started]
    try:
        for n in range(3):
            wait_until(lambda n=n: (tmp_path / f"s{n}.ready").exists(), f"s{n} ready", 30)
        assert stop_all(records) == ["s0", "s1", "s2"]
        assert not any(
            psutil.pid_exists(r.pid) and psutil.Process(r.pid).status() != psutil.STATUS_ZOMBIE
            for r in records
        )
        signalled = [float((tmp_path / f"s{n}").read_text()) for n in range(3)]
        assert max(signalled) - min(signalled) < grace / 2, signalled
        assert stop_all(records) == [], "stopping twice must be a no-op"
    finally:
        for proc, _ in started:
            proc.kill()


def test_a_taken_port_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(StackError, match=f"airflow={port}"):
            require_free_ports("127.0.0.1", {"airflow": port})


def test_free_ports_stay_out_of_the_ranges_others_pick_from_at_random():
    low, high = (int(n) for n in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20  # never the same port twice
    assert all(not low <= p <= high for p in ports)  # not a port the kernel hands out
    assert all(20000 <= p < 30000 for p in ports)  # not Ray's workers, not Serve's replicas
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(StackError, match=f"no free port in {taken}-{taken}"):
            free_port(taken, taken)
