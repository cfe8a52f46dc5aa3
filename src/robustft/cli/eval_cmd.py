"""``robustft eval``: robust accuracy (or a nested robust curve and expected robustness) of a trained model.

    robustft eval --checkpoint RUN [--which last] [--data NAME] [--split test] [--limit N]
                  [--attack apgd-ce] [--eps 4/255 | --curve 0:8/255] [--norm linf|l2] [--steps N]
                  [--step-size 1/255] [--restarts N] [--random-start | --no-random-start]
                  [--checks] [--json FILE] [--csv FILE] [--batch-size B] [--device auto] [--seed S] [--quiet]
    robustft eval --model NAME --num-classes N [--image-size S] [--pretrained-file FILE] --data NAME ...
    robustft eval --checkpoint EXPORT.safetensors --data NAME ...   (a robustft export, read with its sidecar)

Prints a table (attack, eps, clean accuracy, robust accuracy, 95% CI, n), the attack's settings as it ran
(defaults included) and, with ``--curve``, paper B's expected robustness; ``--json FILE`` / ``--csv FILE`` write
the same (atomically). Progress goes to stderr, one plain line per batch and per phase, so it reads the same in a
terminal and in a log file. ``--subset-of RUN`` evaluates exactly the images RUN's continuous evaluation used.
"""

from __future__ import annotations

import argparse
from typing import Any

from robustft.cli.eval_attack import check_eps_scale, check_step_size, describe_settings, settings_of
from robustft.cli.eval_source import data_source, image_size_notes, load_model, run_config, run_image_size
from robustft.cli.eval_subset import (
    ATTACK_FLAGS,
    as_flags,
    check_same_data,
    recorded_at_last_step,
    recorded_block,
    recorded_summary,
    run_attack_options,
    run_directory,
    select_ids,
)
from robustft.cli.options import BooleanFlag
from robustft.cli.output import progress, write_csv, write_json
from robustft.config.units import eps_grid, format_eps, parse_eps, parse_step_size
from robustft.errors import ConfigError

# The checks run_checks performs (robustft.attacks.checks); those needing eps > 0 are skipped at eps 0, and the
# convergence check runs for an attack with steps.
CHECKS = ("random_forward", "zero_or_nan_gradients", "eps_not_monotone", "steps_not_monotone",
          "black_box_beats_white_box", "huge_eps_accuracy", "attack_not_converged")
CHECKS_NEEDING_EPS = ("eps_not_monotone", "steps_not_monotone", "black_box_beats_white_box", "attack_not_converged")

# Attack options the command line sets: argparse dest -> (attack option, flag as the user wrote it).
ATTACK_OPTIONS = {"norm": ("norm", "--norm"), "steps": ("steps", "--steps"), "step_size": ("step_size", "--step-size"),
                  "restarts": ("restarts", "--restarts"), "random_start": ("random_start", "--random-start")}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="robust accuracy / nested robust curve of a checkpoint under an attack",
        description="Evaluate a trained model (a run directory or checkpoint file), or a freshly built --model, "
                    "under an attack at one eps or along a nested eps curve with expected robustness; per-sample "
                    "worst case, Wilson 95% CIs. Images are in [0, 1], so eps is too: 4/255, 0.25/255, 0.0157.")
    source = parser.add_argument_group("model")
    source.add_argument("--checkpoint", metavar="RUN",
                        help="run directory, checkpoint .pt, or a file robustft export wrote (.safetensors/.pt with "
                             "its .json sidecar) to evaluate")
    source.add_argument("--which", default="last",
                        help="checkpoint inside RUN/checkpoints: last, best or step_N (default last)")
    source.add_argument("--model", help="instead of --checkpoint: a model name to build (robustft list models)")
    source.add_argument("--num-classes", type=int, help="classes of --model's fresh head")
    source.add_argument("--pretrained-file", metavar="FILE",
                        help="--model's weights, trained classifier head included, from a .safetensors/.pt/.pth "
                             "state dict (what robustft export writes); a file without a head of --num-classes "
                             "outputs is refused")
    source.add_argument("--image-size", type=int, help="image side (default: the checkpoint's / model's)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="dataset name (robustft list datasets); default: the run's dataset")
    data.add_argument("--split", default="test", help="dataset split: train, val or test (default test)")
    data.add_argument("--limit", type=int, metavar="N",
                      help="evaluate a seeded, stratified subset of N samples (the same N every time; not the "
                           "subset a run's continuous evaluation used: that is --subset-of RUN)")
    data.add_argument("--subset-of", metavar="RUN",
                      help="evaluate exactly the --split images RUN's continuous evaluation used (its eval.subset, "
                           "ids read from RUN/outcomes.bin), on RUN's dataset: a recorded clean accuracy repeats to "
                           "the digit, robust accuracy up to the attack's random start")
    attack = parser.add_argument_group("attack")
    attack.add_argument("--attack", help="attack name (robustft list attacks); default apgd-ce, or with --subset-of "
                                         "RUN the run's own attack at its eps, where the options given do not say "
                                         "otherwise (another --attack takes nothing from the run)")
    attack.add_argument("--eps", help="radius in [0, 1] image units: 4/255, 0.25/255 or 0.0157 (default 4/255)")
    attack.add_argument("--curve", metavar="LOW:HIGH[:STEP]",
                        help="nested curve over an eps range on a 1/255 grid (e.g. 0:8/255); adds E.adv")
    attack.add_argument("--norm", choices=("linf", "l2"), help="threat model (default: the attack's, linf)")
    attack.add_argument("--steps", type=int, help="attack steps (default: the attack's own)")
    attack.add_argument("--step-size", help="pgd's step in [0, 1] units, e.g. 0.25/255, or relative to eps, e.g. "
                                            "0.25eps (scaled to every eps of a --curve); steps x step must reach eps")
    attack.add_argument("--restarts", type=int, help="random restarts (pgd, apgd, cascade)")
    attack.add_argument("--random-start", action=BooleanFlag, default=None,
                        help="start from a random point of the eps-ball (default: the attack's own)")
    attack.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (default 0)")
    attack.add_argument("--checks", action="store_true",
                        help="run the gradient-masking checks first (one verdict line per check), and classify "
                             "every attacked point again rather than trusting the logits the attack recorded")
    run_group = parser.add_argument_group("run and output")
    run_group.add_argument("--batch-size", type=int,
                           help="attack batch size (default: 256 on CPU, the largest that fits on CUDA)")
    run_group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    run_group.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    run_group.add_argument("--csv", metavar="FILE", help="also write the results as CSV to FILE")
    run_group.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run)


def parse_curve(text: str) -> list[float]:
    """``LOW:HIGH`` (1/255 grid) or ``LOW:HIGH:STEP`` -> ascending eps list including both ends."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"--curve {text!r} must look like 0:8/255 or 0:8/255:2/255.")
    low, high = parse_eps(parts[0], name="--curve low"), parse_eps(parts[1], name="--curve high")
    step = parse_eps(parts[2], name="--curve step") if len(parts) == 3 else 1 / 255
    if high <= low or step <= 0:
        raise ConfigError(f"--curve {text!r} needs LOW < HIGH and a positive STEP, e.g. 0:8/255.")
    return [e for e in eps_grid(high, step) if e >= low - 1e-12] if low > 0 else eps_grid(high, step)


def build_cli_attack(args: argparse.Namespace):
    """The attack named by ``--attack`` with the options given on the command line (others: its defaults)."""
    import torch

    from robustft.attacks import build_attack

    attack = build_attack(args.attack)  # unknown name -> the list of attacks
    options: dict[str, Any] = {}
    for dest, (option, flag) in ATTACK_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if not attack.accepts(option):
            extra = " (square counts queries, not steps)" if option == "steps" and args.attack == "square" else ""
            raise ConfigError(f"attack {args.attack!r} has no {option}{extra}; drop {flag}, or pick an attack that "
                              "has it (pgd takes norm, steps, step_size, restarts, random_start).")
        if option == "step_size":
            # "0.25eps" becomes a RelativeStep (the attack scales it to each eps it runs at); anything else is pixel
            # units; a malformed value -> how to write one
            value = parse_step_size(value, name="--step-size")
        elif option in ("steps", "restarts") and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}.")
        options[option] = value
    if attack.accepts("generator"):
        options["generator"] = torch.Generator().manual_seed(args.seed)
    return attack.with_options(**options)


def check_attack_reaches(attack, eps: float, where: str) -> None:
    """Refuses an attack whose steps x step size fall short of ``eps`` (``--steps 2 --step-size 0.1/255`` at
    4/255 would report a weak attack's accuracy as robust accuracy): the check a config's attack gets
    (``robustft.config.validate.check_reach``), its fix written as command-line options."""
    import inspect

    from robustft.config.validate import STEP_SIZE_ATTACKS, check_reach

    step_size = attack.options.get("step_size")
    if attack.name not in STEP_SIZE_ATTACKS or step_size is None or eps <= 0:
        return  # no step size given: the attack's default (2.5 eps / steps for pgd) reaches eps
    steps = attack.options.get("steps", inspect.signature(attack.fn).parameters["steps"].default)
    check_reach("robustft eval", attack.name, int(steps), step_size, eps, where,
                spell=lambda option, value: f"--{option.replace('_', '-')} {value}")


def format_results(results, e_adv: float | None, settings: str | None = None) -> str:
    """The printed table: attack, eps, clean accuracy, robust accuracy, 95% CI, n, then the attack's settings as it
    ran (defaults included: ``settings``, else the options given) and E.adv."""
    lines = [f"{'attack':<12} {'eps':>9} {'clean':>7} {'robust':>7} {'95% CI':>16} {'n':>6}"]
    for r in results:
        ci = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        clean = r.clean_correct / r.n if r.n else float("nan")
        lines.append(f"{r.attack.split('(')[0]:<12} {format_eps(r.eps):>9} {clean:>7.4f} {r.accuracy:>7.4f} "
                     f"{ci:>16} {r.n:>6}")
    if settings:
        lines.append(f"attack settings: {settings}")
    elif results and "(" in results[0].attack:
        lines.append(f"attack settings: {results[0].attack}")
    if e_adv is not None:
        lines.append(f"expected robustness E.adv over [0, {format_eps(results[-1].eps)}]: {e_adv:.4f}")
    return "\n".join(lines)


def result_rows(results) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the CSV: one row per eps."""
    header = ["attack", "eps", "eps_text", "clean_accuracy", "accuracy", "ci_low", "ci_high", "correct", "n",
              "seconds"]
    rows = [[r.attack, r.eps, format_eps(r.eps), r.clean_correct / r.n, r.accuracy, r.ci_low, r.ci_high, r.correct,
             r.n, r.seconds] for r in results]
    return header, rows


def repeat_runs_attack(args: argparse.Namespace) -> dict[str, Any]:
    """With ``--subset-of RUN``, fills every attack option not given with the run's own attack at its eps; returns
    what it filled.

    A newcomer ran ``--subset-of RUN`` with no attack option and got APGD-CE at 4/255 (1.2% robust) for a run that
    recorded 54.7% under PGD-15 at 1/255; another asked for the run's attack with more steps (``--steps 100``) and got
    APGD-CE at 4/255 again, since one option used to switch the run's attack off. Options given win; another
    ``--attack`` takes nothing from the run; another radius (``--eps``, ``--curve``) does not take the run's step size
    (an absolute step that fits the run's eps need not fit another).
    """
    if not args.subset_of:
        return {}
    options = run_attack_options(recorded_block(args.subset_of, args.split), run_config(args.subset_of))
    if not options or (args.attack is not None and args.attack != options["attack"]):
        return {}
    if args.eps is not None or args.curve is not None:
        options.pop("eps", None)
        options.pop("step_size", None)
    filled = {key: value for key, value in options.items() if getattr(args, key, None) is None}
    for key, value in filled.items():
        setattr(args, key, value)
    return filled


def run(args: argparse.Namespace) -> int:
    from robustft.attacks import expected_robustness
    from robustft.attacks.robust_evaluation import _default_batch_size
    from robustft.device import resolve_device

    given = {flag: getattr(args, flag) for flag in ATTACK_FLAGS if getattr(args, flag, None) is not None}
    repeated = repeat_runs_attack(args)
    args.attack = args.attack or "apgd-ce"
    args.eps = args.eps or "4/255"
    eps_list = parse_curve(args.curve) if args.curve else [parse_eps(args.eps, name="--eps")]
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}.")
    attack = build_cli_attack(args)
    check_attack_reaches(attack, max(eps_list), "--curve" if args.curve else "--eps")
    step_warnings, eps_warnings = check_step_size(attack, eps_list), check_eps_scale(attack, eps_list)
    for warning in step_warnings + eps_warnings:  # shown even with --quiet: it is about the number, not progress
        progress(f"warning: {warning}")
    device = resolve_device(args.device)
    say = lambda message: progress(message, quiet=args.quiet)  # noqa: E731
    subset_config = run_config(args.subset_of) if args.subset_of else None
    if args.image_size is None and run_image_size(subset_config):
        args.image_size = run_image_size(subset_config)  # the run's images at the run's size, for the model too
    model, source = load_model(args, device)
    if repeated:  # said once the model loaded: a wrong --checkpoint gets its error alone
        kept = f", with {as_flags(given)} as given" if given else ""
        say(f"eval: repeating {args.subset_of}'s own attack ({as_flags(repeated)}){kept}")
    image_size = args.image_size or source.get("image_size") or model.info.input_size
    size_warnings = image_size_notes(args, source, image_size, subset_config)
    for note in size_warnings:  # shown even with --quiet
        progress(f"warning: {note}")
    block = None
    if args.subset_of:
        if args.limit is not None:
            raise ConfigError("--subset-of RUN evaluates the run's own subset; drop --limit (or --subset-of).")
        block = recorded_block(args.subset_of, args.split)
        source["run_config"] = subset_config  # the ids are of that run's data (root, hold-out seed)
        if args.data:
            check_same_data(args.data, source["run_config"], args.subset_of)
    name, data_options = data_source(args, source)
    batch_size = _default_batch_size(device, args.batch_size)
    subset_run = run_directory(args.subset_of) if block is not None else None  # RUN also for RUN/checkpoints/X.pt
    shown = f" (the {len(block.image_ids)} images {subset_run} evaluated)" if block is not None else \
        f" (subset of {args.limit})" if args.limit else ""
    say(f"eval: loading {name} {args.split} at {image_size} px{shown}")
    batches = _load_batches(name, args.split, image_size, args.limit, batch_size, data_options,
                            None if block is None else block.image_ids)
    warnings = run_checks_verbose(model, batches, max(eps_list), device, say, attack) if args.checks else []
    results = evaluate(model, batches, attack, eps_list, device, args.batch_size, say, recheck=args.checks)
    e_adv = expected_robustness(eps_list, results) if args.curve and eps_list[0] == 0 else None
    print(format_results(results, e_adv, describe_settings(attack)))
    if block is not None:
        print(f"subset: the {len(block.image_ids)} {args.split} images {subset_run} evaluated, at {image_size} "
              f"px; {recorded_summary(block, subset_config, recorded_at_last_step(args.subset_of, block))}")
    if args.json:
        write_json(args.json, {
            **source, "data": name, "split": args.split, "limit": args.limit, "subset_of": args.subset_of,
            "image_size": image_size,
            "attack": attack.describe(), "attack_settings": {k: v if isinstance(v, int | float | bool | str) else
                                                              str(v) for k, v in settings_of(attack).items()},
            "device": str(device),
            "results": [{**r.as_dict(), "eps_text": format_eps(r.eps), "clean_accuracy": r.clean_correct / r.n}
                        for r in results],
            "expected_robustness": e_adv,
            "warnings": [*({"check": "step_size", "message": m} for m in step_warnings),
                         *({"check": "image_size", "message": m} for m in size_warnings),
                         *({"check": "eps", "message": m} for m in eps_warnings),
                         *({"check": w.check, "message": w.message} for w in warnings)],
        })
        print(f"wrote {args.json}")
    if args.csv:
        write_csv(args.csv, *result_rows(results))
        print(f"wrote {args.csv}")
    return 0


def evaluate(model, batches, attack, eps_list: list[float], device, batch_size: int | None, say, *,
             recheck: bool = False) -> list:
    """``robust_curve`` batch by batch (one progress line each), summed: the same counts as one call.

    Nesting is per sample, so per-batch curves add up to the whole curve; the model is prepared once. With
    ``recheck`` (``--checks``) every returned point is classified again rather than judged by the logits the attack
    recorded for it (one more forward pass; a difference is warned of).
    """
    from robustft.attacks import RobustAccuracy, prepare_for_attack, robust_curve

    prepared = prepare_for_attack(model).to(device)
    total = sum(int(labels.shape[0]) for _, labels in batches)
    shown = ", ".join(format_eps(e) for e in eps_list)
    say(f"eval: {describe_settings(attack)} at eps {shown} on {total} samples in {len(batches)} batch(es)")
    sums: list[list[float]] | None = None
    name, seen = "", 0
    for index, batch in enumerate(batches, 1):
        part = robust_curve(prepared, [batch], attack, eps_list, device=device, batch_size=batch_size, prepare=False,
                            recheck=recheck)
        counts = [[r.correct, r.n, r.clean_correct, r.seconds] for r in part]
        sums = counts if sums is None else [[a + b for a, b in zip(s, c, strict=True)] for s, c in zip(sums, counts,
                                                                                                        strict=True)]
        name, seen = part[0].attack, seen + part[0].n
        say(f"eval: batch {index}/{len(batches)} ({seen}/{total} samples): clean {sums[0][2] / seen:.3f}, robust at "
            f"{format_eps(eps_list[-1])} {sums[-1][0] / seen:.3f}")
    if sums is None:
        raise ConfigError("robust evaluation got no samples; check the data split and --limit.")
    return [RobustAccuracy.from_counts(int(c), int(n), int(k), eps, name, s)
            for (c, n, k, s), eps in zip(sums, eps_list, strict=True)]


def run_checks_verbose(model, batches, eps: float, device, say, attack=None) -> list:
    """``run_checks`` with a progress line before and one verdict line per check after (stdout); ``attack``, the
    evaluated one, is also checked for convergence (10x its steps)."""
    from robustft.attacks import run_checks
    from robustft.attacks.checks import attack_steps

    planned = [c for c in CHECKS if (eps > 0 or c not in CHECKS_NEEDING_EPS)
               and (c != "attack_not_converged" or (attack is not None and attack_steps(attack) is not None))]
    say(f"checks: running {len(planned)} checks (gradient masking, convergence) at eps {format_eps(eps)} on up to "
        "128 samples (several attacks: minutes on a CPU)")
    warnings = run_checks(model, batches, eps, device=device, attack=attack)
    flagged = {w.check: w for w in warnings}
    for check in [*planned, *[c for c in flagged if c not in planned]]:
        warning = flagged.get(check)
        print(f"check {check:<26} {'WARNING: ' + warning.message if warning else 'ok'}")
    verdict = "all passed" if not warnings else f"{len(warnings)} warning(s): robust accuracy may be overestimated"
    print(f"checks: {len(planned)} run, {verdict}")
    return warnings


def _load_batches(name: str, split: str, image_size: int | None, limit: int | None, batch_size: int,
                  options: dict[str, Any], ids=None) -> list:
    """The evaluated batches: the split (its seeded ``limit`` subset), or exactly the samples with source ``ids``."""
    import robustft.data as data

    dataset = data.load(name, split, image_size=image_size, limit=limit, **options)
    if ids is not None:
        dataset = select_ids(dataset, ids, "--subset-of")
    return [(images, labels) for images, labels in _pairs(data.make_loader(dataset, batch_size))]


def _pairs(loader):
    for item in loader:
        if isinstance(item, dict):
            yield item["image"], item["label"]
        else:
            yield item[0], item[1]

