"""Where the project's files are, from any test folder."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
