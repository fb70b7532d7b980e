"""The README's configuration table lists every setting, and nothing that does not exist."""

from __future__ import annotations

import re

from serve_app.settings import Settings
from tests.support.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def test_readme_configuration_table_matches_the_settings() -> None:
    documented = set(re.findall(r"^\| `PRIMSCENE_([A-Z0-9_]+)` \|", README.read_text(), flags=re.MULTILINE))
    fields = {
        name.upper()
        for area in Settings.model_fields.values()
        for name in area.annotation.model_fields  # type: ignore[union-attr]
    }
    assert documented == fields
