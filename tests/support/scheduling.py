"""How `make test-fast` spreads the test files over pytest-xdist workers (`--dist loadfile`).

- A file stays on one worker, so its module fixtures (an app per file) are built once.
- The files that load the shipped models in-process run on one worker, as if they were one file:
  the model code is imported and the models and their deployments are loaded once (session
  fixtures in tests/unit/conftest.py), not once per worker (about 10 s of CPU on 2 cores).
- The longest files go first, by the times of the last run that ran them (pytest's cache,
  `.pytest_cache`), so that no worker is left with a long file at the end while the others idle.
  Without a record (a fresh clone), the files with the most tests go first, as pytest-xdist does.

pytest-xdist's own `xdist_group` marker cannot group files here: on pytest 9 its renaming of node
ids has no effect.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict

import pytest
from xdist.scheduler import LoadScopeScheduling

MODEL_FILES = frozenset(
    f"tests/unit/{name}.py"
    for name in (
        "test_models", "test_runtime_parity", "test_model_deployments", "test_hostile_images_in_models",
        "test_benchmark", "test_ray_async_peer",
    )
)
MODELS_SCOPE = "the model files"
CACHE_KEY = "primscene/seconds_per_file"


def scope_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return MODELS_SCOPE if path in MODEL_FILES else path


class LongestFileFirst(LoadScopeScheduling):
    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        assert config.cache is not None
        self._seconds: dict[str, float] = config.cache.get(CACHE_KEY, {})
        self._ordered = False

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)

    def _assign_work_unit(self, node) -> None:
        if not self._ordered:  # the queue is complete before the first unit is handed out
            ranked = sorted(self.workqueue.items(), key=lambda unit: -self._seconds.get(unit[0], 0.0))
            self.workqueue = OrderedDict(ranked)  # a stable sort: unknown files keep xdist's order
            self._ordered = True
        super()._assign_work_unit(node)


class FileTimes:
    """A plugin that adds up each scope's test times in this run and keeps them for the next."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._seconds[scope_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        cache = self._config.cache
        if self._seconds and cache is not None:
            measured = {scope: round(seconds, 2) for scope, seconds in self._seconds.items()}
            cache.set(CACHE_KEY, {**cache.get(CACHE_KEY, {}), **measured})
