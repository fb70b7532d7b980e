"""Copy configs/cluster.yaml into the RayService's `serveConfigV2` (k8s/base/rayservice.yaml).

    python scripts/render_k8s.py            # rewrite the manifest
    python scripts/render_k8s.py --check    # exit 1 if the manifest is out of date

The Serve config lives once, in configs/cluster.yaml (checked by scripts/check_serve_config.py
and usable with `serve deploy`); KubeRay wants it as a string inside the RayService. This
replaces the literal block after `serveConfigV2: |` with the file's text, byte for byte, and
leaves the rest of the manifest (comments included) as it is.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "configs" / "cluster.yaml"
RAYSERVICE = ROOT / "k8s" / "base" / "rayservice.yaml"

_KEY = re.compile(r"^(?P<indent> *)serveConfigV2: \|\s*$")


def render(manifest: str, serve_config: str) -> str:
    """`manifest` with its serveConfigV2 block replaced by `serve_config`."""
    lines = manifest.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _KEY.match(line)]
    if len(starts) != 1:
        raise ValueError(f"expected one `serveConfigV2: |` line, found {len(starts)}")
    start = starts[0]
    indent = len(_KEY.match(lines[start])["indent"])
    end = start + 1
    # The block runs while lines are blank or indented deeper than the key.
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" ")) > indent):
        end += 1
    # Blank lines right before the next key belong to the manifest, not to the block.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    if not serve_config.endswith("\n") or serve_config.endswith("\n\n"):
        raise ValueError("the Serve config must end with exactly one newline (a YAML `|` block keeps one)")
    if serve_config.startswith((" ", "\n")):
        raise ValueError("the Serve config must start at column 0 (a YAML `|` block takes its indent from line one)")
    pad = " " * (indent + 2)
    block = [pad + line if line.strip() else "\n" for line in serve_config.splitlines(keepends=True)]
    return "".join(lines[: start + 1] + block + lines[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the manifest is up to date")
    args = parser.parse_args(argv)
    current = RAYSERVICE.read_text()
    wanted = render(current, SERVE_CONFIG.read_text())
    if current == wanted:
        print(f"{RAYSERVICE.relative_to(ROOT)}: up to date with {SERVE_CONFIG.relative_to(ROOT)}")
        return 0
    if args.check:
        print(f"{RAYSERVICE.relative_to(ROOT)}: serveConfigV2 differs from {SERVE_CONFIG.relative_to(ROOT)}; "
              "run `python scripts/render_k8s.py`")
        return 1
    RAYSERVICE.write_text(wanted)
    print(f"{RAYSERVICE.relative_to(ROOT)}: serveConfigV2 rewritten from {SERVE_CONFIG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
