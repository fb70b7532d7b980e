"""A model replica's lower priority holds for every thread of its process, not only the one
that ran its constructor (Linux keeps a nice value per thread)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent("""
    import os, threading
    from deployments.cpu import lower_priority

    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = niceness()
    started, stop, seen = threading.Event(), threading.Event(), {}

    def earlier_thread():
        started.set()
        stop.wait()
        seen["earlier"] = niceness()

    earlier = threading.Thread(target=earlier_thread)
    earlier.start()
    started.wait()
    # As in a replica: the constructor runs on a thread other than the one serving requests.
    worker = threading.Thread(target=lower_priority, args=(5,))
    worker.start()
    worker.join()
    later = threading.Thread(target=lambda: seen.update(later=niceness()))
    later.start()
    later.join()
    stop.set()
    earlier.join()
    print(before, niceness(), seen["earlier"], seen["later"])
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_lower_priority_reaches_every_thread_of_the_process() -> None:
    output = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True).stdout
    before, main, earlier, later = (int(value) for value in output.split())
    expected = min(19, before + 5)
    assert (main, earlier, later) == (expected, expected, expected)
