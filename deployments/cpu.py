"""How a model replica shares the CPU cores with the rest of the service."""

from __future__ import annotations

import os


def share_cpu(threads: int, niceness: int) -> None:
    """No more threads than the replica's share (more only fight the other replicas), and a
    lower scheduling priority than the ingress when `niceness` > 0: on shared cores, inference
    then yields to accepting uploads and answering polls instead of making them wait."""
    import torch  # here, not at the top: a module that imports this one may never run a model

    torch.set_num_threads(threads)
    if niceness > 0:
        lower_priority(niceness)


def lower_priority(niceness: int) -> None:
    """Add `niceness` to every thread of this process. Linux keeps a nice value per thread and
    `os.nice` changes only the calling one: a replica's constructor does not run on the thread
    that takes its requests, so that thread (a third of the detector's CPU) kept the ingress's
    priority. Threads started later inherit their starter's value."""
    if not os.path.isdir("/proc/self/task"):  # not Linux: nice is per process there
        os.nice(niceness)
        return
    for thread in os.listdir("/proc/self/task"):
        tid = int(thread)
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
        except ProcessLookupError:  # the thread ended meanwhile
            pass
