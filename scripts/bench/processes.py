"""Start a server as a child process, wait until it answers, measure its memory, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil


class Server:
    """A server command (e.g. `serve run`, `uvicorn`) run in its own process group."""

    def __init__(self, command: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path) -> None:
        self._log = log.open("w")
        self.process = subprocess.Popen(
            list(command), env={**os.environ, **env}, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_until_ready(self, url: str, timeout_s: float = 240) -> float:
        """Seconds until `url` answered 200."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self._log.name}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{url} not ready within {timeout_s} s; see {self._log.name}")

    def memory_mb(self) -> dict:
        """Proportional (PSS: shared pages split between sharers) and resident (RSS) memory of
        the server and every process it started, e.g. Ray's GCS, raylet and replica workers, with
        the PSS of each kind of process (`role`), to tell which one grows."""
        root = psutil.Process(self.process.pid)
        pss = rss = 0
        by_role: dict[str, float] = {}
        for process in [root, *root.children(recursive=True)]:
            try:
                info, kind = process.memory_full_info(), role(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            pss += info.pss
            rss += info.rss
            by_role[kind] = by_role.get(kind, 0) + info.pss
        return {"pss": round(pss / 2**20, 1), "rss": round(rss / 2**20, 1),
                "pss_by_role": {kind: round(value / 2**20, 1) for kind, value in sorted(by_role.items())}}

    def stop(self, timeout_s: float = 60) -> None:
        """Ctrl-C, as a user stops `serve run`; killed if it does not exit in time."""
        if self.process.poll() is None:
            descendants = psutil.Process(self.process.pid).children(recursive=True)
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            # Ray's daemons may have left the process group; none may outlive the run.
            for process in psutil.wait_procs(descendants, timeout=10)[1]:
                process.kill()
        self._log.close()


def role(process: psutil.Process) -> str:
    """A short name for what a process does: Ray names its workers in their title."""
    command = process.cmdline()
    title = command[0] if command else process.name()
    if title.startswith("ray::"):
        return title.removeprefix("ray::").split(":")[-1].split(".")[0] or title
    name = Path(title).name
    if name.startswith("python") and len(command) > 1:  # e.g. Ray's dashboard or log monitor
        return Path(command[1]).stem
    return name


def cpu_seconds(root_pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by each kind of process: the server's tree and the
    PostgreSQL server processes. Differences between two calls say where time went.

    A process that exits between two calls (a pooled PostgreSQL connection that is closed, a
    Ray worker that is replaced) takes its own times with it, but its parent, once it has
    reaped it, holds them among its children's times; those are counted too, under the
    parent's kind for PostgreSQL (the postmaster reaps every backend) and under "exited
    processes" for the server's tree, so that no CPU leaves the figure with the process."""
    processes = []
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    totals: dict[str, float] = {}
    for process in processes + postgres:
        try:
            times = process.cpu_times()
            kind = "postgres" if process in postgres else role(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        reaped = times.children_user + times.children_system
        totals[kind] = totals.get(kind, 0.0) + times.user + times.system
        if reaped:
            exited = "postgres" if kind == "postgres" else "exited processes"
            totals[exited] = totals.get(exited, 0.0) + reaped
    return totals
