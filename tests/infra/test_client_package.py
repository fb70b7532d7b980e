"""The client installs on its own: `pip install ./primscene_client` into an empty virtualenv
gives a working `primscene` command, and none of the server's heavy dependencies."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

from tests.support.paths import PROJECT_ROOT as ROOT

SERVER_ONLY = {"torch", "ray", "openvino", "ultralytics", "timm", "sqlalchemy", "fastapi"}


def test_client_installs_alone_without_the_server(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", str(ROOT / "primscene_client")], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    shown = subprocess.run([env / "bin" / "primscene", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "submit" in shown.stdout and "login" in shown.stdout
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "primscene-client" in names
    assert names & SERVER_ONLY == set()
    imported = subprocess.run([python, "-c", "import primscene_client, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
                               "{'serve_app', 'deployments', 'db'}))"], capture_output=True, text=True, cwd=tmp_path)
    assert imported.stdout.strip() == "[]", imported.stderr
