"""Several ``python -m train`` workers on this machine, one cluster on 127.0.0.1: each gets a ``TF_CONFIG``
naming every worker's free loopback port and its own index, as a real cluster's machines would. For the
multiworker test and benchmark (``python -m train.bench --multiworker``), and to try ``--strategy multiworker``
before there are several machines.

Each worker's output goes to its own log file (no pipe that could fill up and stall it). ``wait`` bounds the
whole run and kills every worker when the time is up, or shortly after one of them failed when the others have
not noticed (TensorFlow's collectives usually abort within a second; a worker alone waits for the others
forever at the start); it collects each worker's peak
resident memory (``os.wait4``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )


class LoopbackCluster:
    """``workers`` processes of ``python -m train ARGS`` (ARGS should hold ``--strategy multiworker``) started
    at once; worker i logs to ``logs/worker{i}.log`` and its temporary folders go to ``logs/worker{i}.tmp``."""

    def __init__(self, args: list[str], logs: Path, workers: int = 2, cwd: Path | None = None) -> None:
        self.logs = [Path(logs) / f"worker{i}.log" for i in range(workers)]
        self.tmpdirs = [Path(logs) / f"worker{i}.tmp" for i in range(workers)]
        self.peak_rss_mb: list[float | None] = [None] * workers
        self.codes: list[int | None] = [None] * workers
        self.started = time.time()
        ports = free_ports(workers)
        self.procs: list[subprocess.Popen] = []
        for i in range(workers):
            self.tmpdirs[i].mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "TF_CONFIG": tf_config(ports, i), "TMPDIR": str(self.tmpdirs[i])}
            with open(self.logs[i], "w") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "train", *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )

    def poll(self) -> bool:
        """Reap the workers that ended (their exit code and peak memory); True while any still runs."""
        for i, p in enumerate(self.procs):
            if self.codes[i] is None:
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    self.codes[i] = p.returncode = os.waitstatus_to_exitcode(status)
                    self.peak_rss_mb[i] = round(usage.ru_maxrss / 1024, 1)
        return any(c is None for c in self.codes)

    def wait(self, timeout: float, grace: float = 30.0) -> list[int | None]:
        """Exit codes once all have ended. The rest are killed (code -9, or None for one that could not be
        reaped) when ``timeout`` seconds have passed since the start, or ``grace`` seconds after one failed
        (TensorFlow tells the others within seconds: they exit 3, see train.cli)."""
        deadline = self.started + timeout
        while self.poll():
            if any(c not in (None, 0) for c in self.codes):
                deadline = min(deadline, time.time() + grace)
                grace = float("inf")  # counted from the first failure only
            if time.time() > deadline:
                self.kill()
                break
            time.sleep(0.05)
        return self.codes

    @property
    def wall_seconds(self) -> float:
        return time.time() - self.started

    def kill(self) -> None:
        """SIGKILL every worker still running (a machine lost, for the resume test) and reap it."""
        for i, p in enumerate(self.procs):
            if self.codes[i] is None:
                try:
                    p.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 30
        while self.poll() and time.time() < deadline:
            time.sleep(0.05)

    def output(self, i: int | None = None, tail: int = 3000) -> str:
        if i is None:
            return "\n".join(f"--- worker {k}\n{self.output(k, tail)}" for k in range(len(self.procs)))
        return self.logs[i].read_text(errors="replace")[-tail:] if tail else self.logs[i].read_text(errors="replace")
