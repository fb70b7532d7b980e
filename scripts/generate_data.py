"""Generate the synthetic primitives/scenes dataset.

    python scripts/generate_data.py --out data/synthetic --train 4000 --val 400 --test 700 --seed 7
    python scripts/generate_data.py --version 2 --seed 8 --out data/synthetic-v2 --train 3500 --val 350 --test 350

(the data of models 1.0/1.1, and the version-2 data models 1.2 were fine-tuned on).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from scripts.datagen.dataset import DEFAULT_COUNTS, DEFAULT_SEED, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"))
    for split, count in DEFAULT_COUNTS.items():
        parser.add_argument(f"--{split}", type=int, default=count, help=f"images in the {split} split")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--version", type=int, default=1, choices=(1, 2), help="generator version (2: paper, pens, fills, photos)")
    args = parser.parse_args()
    started = time.perf_counter()
    counts = {"train": args.train, "val": args.val, "test": args.test}
    write_dataset(args.out, counts, args.seed, workers=args.workers, version=args.version)
    print(f"wrote {sum(counts.values())} images to {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
