import socket
import subprocess
import sys
import time

import psutil
import pytest

from conveyor.processes import StackError, free_port, require_free_ports, spawn, stop

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
