"""Re-measures the embedded tasks' complexity and rewrites ``src/robustft/data/complexity.json``.

    python scripts/measure_complexity.py                      # every task x both embedded backbones
    python scripts/measure_complexity.py --datasets emoji --probes mobilenet_v2@32 --output /tmp/c.json

Complexity = the frozen pretrained backbone's linear-probe accuracy (``robustft.training.complexity``) and the
class count. Six tasks x two backbones took 20 minutes on 2 CPU cores shared with other jobs (the ViT most of
it). Existing entries for other tasks/backbones in the output file are kept; the ones measured are replaced and
dated today (each probe carries its own date; the table's top-level date is the latest run's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from robustft.data.complexity import TABLE_PATH, separability
from robustft.training.complexity import DEFAULT_PROBES, complexity_table, measure

DATASETS = ("fashion-mnist", "mnist", "digits", "animal-mnist", "elpv", "emoji")


def _probe(text: str) -> tuple[str, int]:
    model, _, size = text.partition("@")
    if not model or not size.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not model@size, e.g. mobilenet_v2@32")
    return model, int(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--probes", nargs="+", type=_probe, default=list(DEFAULT_PROBES),
                        help="model@size pairs (default: mobilenet_v2@32 vit_small_dinov2@56)")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=TABLE_PATH)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = []
    for dataset in args.datasets:
        for model, size in args.probes:
            result = measure(dataset, model, size, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
            results.append(result)
            print(f"{dataset:14s} {result.key:22s} classes {result.classes:3d}  acc {result.accuracy:6.1%}  "
                  f"balanced {result.balanced_accuracy:6.1%}  majority {result.majority:6.1%}  separability "
                  f"{separability(result.balanced_accuracy, result.classes):.3f}  n {result.n_train}/{result.n_test}",
                  flush=True)
    fresh = complexity_table(results)
    table = json.loads(args.output.read_text()) if args.output.is_file() else {"datasets": {}}
    for name, entry in fresh["datasets"].items():
        merged = table["datasets"].setdefault(name, {"classes": entry["classes"], "probes": {}})
        merged["classes"] = entry["classes"]
        merged["probes"].update(entry["probes"])
    table.update(measured=fresh["measured"], method=fresh["method"],
                 settings={"n_train": args.n_train, "n_test": args.n_test, "seed": args.seed})
    args.output.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
