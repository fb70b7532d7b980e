"""Imports run one way: the HTTP app (`serve_app`) may use the models (`deployments`) and the
store (`db`); those two know nothing of the app, nor of each other; the client
(`primscene_client`) imports nothing of the server. Read from the source, so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT as ROOT

OURS = {"serve_app", "deployments", "db", "primscene_client", "scripts", "tests"}
# Each package, and the packages of ours it may import besides itself.
ALLOWED = {
    "db": set(),
    "deployments": set(),
    "primscene_client": set(),
    "serve_app": {"db", "deployments", "primscene_client"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages of ours that a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from serve_app.metrics import task_metrics\n")
    assert imported_packages(module) == {"serve_app"}
