"""``robustft eval --subset-of RUN``: exactly the images a run's continuous evaluation used, so its numbers repeat.

The trainer's evaluator draws its ``eval.subset`` images of each split once, seeded by the run seed plus the split's
position in ``eval.splits`` and drawn from the split after ``data.limit_*``: ``eval --limit N`` (a stratified subset of
the whole split, seeded by the run seed) draws other images, and no choice of N and seed repeats the evaluator's
draw in general. The run records the ids it evaluated (each image's index in its split's source order) in
``outcomes.bin`` beside every verdict; those ids are what this reads, so there is one definition of "the run's
subset": the one it stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustft.errors import ConfigError


def run_directory(path: str | Path) -> Path:
    """RUN for RUN or RUN/checkpoints/X.pt.

    Raises:
        ConfigError: ``path`` does not exist (a mistyped run directory would otherwise be read as a checkpoint
            file two folders down, and the error would name the wrong folder).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--subset-of {path}: no such run directory or checkpoint; pass the folder robustft "
                          "train wrote (e.g. runs/NAME, as listed by ls runs/).")
    return path if path.is_dir() else path.parent.parent


def recorded_block(run: str | Path, split: str) -> Any:
    """The run's last recorded evaluation of ``split`` (an ``OutcomeBlock``: ``image_ids``, ``correct``, ``step``).

    Raises:
        ConfigError: not a run directory with ``outcomes.bin``, or no evaluation of ``split`` in it (the message
            lists the splits it has).
    """
    from robustft.runs.outcomes import OUTCOMES_FILE, read_outcome_blocks

    directory = run_directory(run)
    blocks = read_outcome_blocks(directory / OUTCOMES_FILE)
    if not blocks:
        raise ConfigError(f"--subset-of {run}: no {directory / OUTCOMES_FILE}, so the images the run evaluated are "
                          "unknown; pass the run directory robustft train wrote (or use --limit N for a seeded "
                          "subset of the split).")
    matching = [block for block in blocks if block.split == split]
    if not matching:
        splits = sorted({block.split for block in blocks})
        raise ConfigError(f"--subset-of {run}: the run evaluated no {split!r} images; it has {', '.join(splits)}. "
                          f"Pass --split {splits[0]} (or another of those).")
    return matching[-1]


def select_ids(dataset: Any, ids: np.ndarray, where: str) -> Any:
    """The samples of ``dataset`` whose source index (``dataset.indices``, else the position) is in ``ids``, in the
    order of ``ids``.

    Raises:
        ConfigError: ids the loaded split does not have (another dataset, hold-out seed or val_fraction).
    """
    import torch

    source = getattr(dataset, "indices", None)
    source = np.arange(len(dataset)) if source is None else np.asarray(source)
    position = {int(index): row for row, index in enumerate(source)}
    missing = [int(i) for i in ids if int(i) not in position]
    if missing:
        raise ConfigError(f"{where}: {len(missing)} of the run's {len(ids)} image ids (e.g. {missing[:3]}) are not in "
                          "the split loaded here; evaluate on the run's own dataset and split settings (drop --data, "
                          "or give the run's).")
    return torch.utils.data.Subset(dataset, [position[int(i)] for i in ids])


def check_same_data(name: str, config: dict[str, Any] | None, run: str | Path) -> None:
    """Refuses ``--data`` naming another dataset than the one whose image ids ``--subset-of RUN`` gives."""
    data = (config or {}).get("data")
    own = data.get("name") if isinstance(data, dict) else None
    if own and name != own:
        raise ConfigError(f"--subset-of {run} gives image ids of {own}, but --data is {name}; drop --data (the run's "
                          f"dataset is used) or pass --data {own}.")


def recorded_at_last_step(run: str | Path, block: Any) -> list[Any]:
    """Every block the run recorded at ``block``'s step on ``block``'s split and images, in the order written (the
    evaluation at that step and, at the end, the final attack's block beside it); ``[block]`` when none other."""
    from robustft.runs.outcomes import OUTCOMES_FILE, read_outcome_blocks

    same = [other for other in read_outcome_blocks(run_directory(run) / OUTCOMES_FILE)
            if other.split == block.split and other.step == block.step
            and np.array_equal(np.asarray(other.image_ids), np.asarray(block.image_ids))]
    return same or [block]


def recorded_summary(block: Any, config: dict[str, Any] | None, blocks: list[Any] | None = None) -> str:
    """What the run recorded on its subset at ``block``'s step, every row of ``blocks`` (default ``[block]``: clean,
    each attack at its eps, the final attack), and the options that repeat its robust numbers
    (``--attack/--eps/--steps/--step-size`` from its ``eval.attack``)."""
    from robustft.config.units import format_eps

    rows = []
    for each in blocks or [block]:
        correct = np.asarray(each.correct)
        rows += [f"{'clean' if eps == 0 else f'{attack} at {format_eps(eps)}'} {correct[i].mean():.4f}"
                 for i, (attack, eps) in enumerate(zip(each.attacks, each.eps, strict=True))]
    line = f"it recorded on them at step {block.step}: {', '.join(dict.fromkeys(rows))}"
    options = run_attack_options(block, config)
    if options:
        line += f"\nto repeat its robust accuracy (up to the attack's random start): {as_flags(options)}"
    return line


def as_flags(options: dict[str, Any]) -> str:
    """``{"attack": "pgd", "step_size": "0.25/255", "random_start": True}`` -> ``--attack pgd --step-size 0.25/255
    --random-start``: ``eval``'s command-line spelling of ``run_attack_options``."""
    flags = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        flags.append((flag if value else f"--no-{flag[2:]}") if isinstance(value, bool) else f"{flag} {value}")
    return " ".join(flags)


# The attack options of ``eval`` that choose the threat model; ``--subset-of RUN`` fills those not given from the
# run's own attack (``run_attack_options``; eval_cmd.repeat_runs_attack).
ATTACK_FLAGS = ("attack", "eps", "curve", "norm", "steps", "step_size", "restarts", "random_start")


def run_attack_options(block: Any, config: dict[str, Any] | None) -> dict[str, Any]:
    """``eval``'s attack options that repeat the run's recorded robust accuracy: its ``eval.attack`` (name, and the
    steps, step size, restarts and random start the attack takes) at the first eps it recorded; empty when the run
    recorded no attack."""
    from robustft.config.units import format_eps

    attack = ((config or {}).get("eval") or {}).get("attack")
    robust = [eps for eps in block.eps if eps > 0]
    if not (isinstance(attack, dict) and attack.get("name") and robust):
        return {}
    from robustft.attacks import build_attack

    accepts = build_attack(str(attack["name"])).accepts  # the resolved config holds every key, e.g. fgsm's steps
    options = {"attack": str(attack["name"]), "eps": format_eps(robust[0])}
    options |= {key: attack[key] for key in ("steps", "step_size", "restarts", "random_start")
                if attack.get(key) is not None and accepts(key)}
    if "step_size" in options:
        options["step_size"] = str(options["step_size"])
    return options

