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
        os.nice(niceness)
