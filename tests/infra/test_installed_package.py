"""A normal install (`pip install .`, not `-e`) works away from the checkout: the data dir is the
user's, migrations ship inside the package, and the weights come from PRIMSCENE_WEIGHTS_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import PROJECT_ROOT as ROOT

PROBE = """
import json, serve_app, serve_app.app as app, db.settings as settings
print(json.dumps({"package": serve_app.__file__, "weights": str(app.AppArgs().detector_weights),
                  "weights_exist": app.AppArgs().detector_weights.is_file(), "data_dir": str(settings.DEFAULT_DATA_DIR)}))
"""


def test_a_non_editable_install_finds_its_weights_data_dir_and_migrations(tmp_path: Path) -> None:
    target, home = tmp_path / "site", tmp_path / "home"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target), "HOME": str(home), "PRIMSCENE_WEIGHTS_DIR": str(ROOT / "weights")}
    for name in ("PRIMSCENE_DATA_DIR", "PRIMSCENE_DATABASE_URL", "XDG_DATA_HOME"):
        env.pop(name, None)
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    import json

    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(target))  # the installed copy, not the checkout
    assert found["weights_exist"] and found["weights"].startswith(str(ROOT / "weights"))
    assert found["data_dir"].startswith(str(home))
    migrated = subprocess.run([sys.executable, "-m", "db.migrate"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert (Path(found["data_dir"]) / "primscene.db").is_file()
