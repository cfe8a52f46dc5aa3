"""Range and cross-field checks of a typed config (types were coerced already by robustft.config.coerce).

Each failure is a one-paragraph :class:`~robustft.errors.ConfigError` naming the key, the value and the fix.
Names owned by other registries (models, datasets, strategies, objectives, attacks) are not checked here: they
are checked when those components are built, with their own close-match messages. The eps schedule names and
evaluation schedules are checked here because this package owns them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

from robustft.config.attack_spec import AttackSpec
from robustft.config.schedule_specs import (
    EPS_SCHEDULE_ALIASES,
    EPS_SCHEDULE_NAMES,
    canonical_eps_schedule,
    check_ramp_within_run,
    parse_evaluation_spec,
)
from robustft.config.units import RelativeStep, StepSize, relative_step, step_in_pixels
from robustft.errors import ConfigError

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# What robustft.sweep's point names use; no path separators, no leading '.' or '-', nothing HTML or a shell reads.
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}\Z")
_SPLITS = ("train", "val", "test")


def validate_config(config: Any) -> None:
    """Raises ConfigError for the first invalid value of a robustft.config.Config.

    Resolves an unset ``eps.schedule`` (zero for the standard objective, constant otherwise) and paper B's schedule
    aliases in place, so the validated config names the schedule it trains with.
    """
    _check_top(config)
    if config.eps.schedule is None:
        config.eps.schedule = "zero" if config.objective.name == "standard" else "constant"
    _check_eps(config.eps)
    _check_objective_takes_the_schedule(config.objective, config.eps)
    if config.eps.schedule == "auto" and "val" not in config.eval.splits:
        raise ConfigError(
            f"eps.schedule=auto watches validation accuracy, but eval.splits={config.eval.splits} has no 'val'; "
            "add it (eval.splits=[train,val,test]) and keep data.val_fraction > 0."
        )
    if config.eps.schedule == "auto" and config.data.val_fraction <= 0:
        raise ConfigError("eps.schedule=auto watches validation accuracy; set data.val_fraction > 0 (e.g. 0.1).")
    if config.eps.schedule == "auto" and config.eval.schedule.strip() == "paper-a":
        # Without a validation record at every epoch end the history stays empty and eps stays 0 all run.
        raise ConfigError(
            f"eps.schedule=auto reads validation accuracy at the end of every epoch, but eval.schedule="
            f"{config.eval.schedule!r} does not evaluate at epoch ends, so eps would stay 0 for the whole run. "
            "Set eval.schedule=epoch (or every:N with N dividing the steps per epoch)."
        )
    _check_model_and_data(config.model, config.data)
    _check_objective(config.objective)
    _check_optim(config.optim)
    _check_train(config.train)
    _check_ramp_fits_the_run(config.eps, config.train)
    _check_eval(config.eval)
    _check_checkpoint(config.checkpoint)
    _check_detect(config.detect)


def _fail(key: str, value: Any, requirement: str) -> None:
    raise ConfigError(f"{key}={value!r} is invalid: {requirement}")


def _at_least(key: str, value: int | float | None, minimum: int | float, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value < minimum:
        _fail(key, value, f"it must be at least {minimum}" + (" (or null)" if optional else "") + ".")


def _positive(key: str, value: float | None, optional: bool = False, example: str = "") -> None:
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        hint = f", e.g. {key}={example}" if example else ""
        _fail(key, value, f"it must be a positive number{hint}" + (" (or null)." if optional else "."))


def _fraction(key: str, value: float | None, closed_right: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = value is not None and math.isfinite(value) and 0.0 <= value and (value <= 1 if closed_right else value < 1)
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        _fail(key, value, f"it must be a fraction in {interval}" + (" (or null)." if optional else "."))


def _check_top(config: Any) -> None:
    name = config.name
    if not _RUN_NAME.match(name or ""):
        _fail("name", name, "the run name becomes a directory under output_dir (and a label in reports): use 1 to "
                            "200 characters from ASCII letters, digits, '.', '_', '+' and '-', starting with a "
                            "letter, digit or '_' (sweeps name their points this way).")
    if not config.output_dir:
        _fail("output_dir", config.output_dir, "give a directory for runs, e.g. output_dir=runs.")
    _at_least("seed", config.seed, 0)
    if not _DEVICE.match(config.device):
        _fail("device", config.device, "use auto, cpu, cuda or cuda:N.")


def _check_model_and_data(model: Any, data: Any) -> None:
    if not model.name:
        _fail("model.name", model.name, "name a model; `robustft list models` shows them.")
    _at_least("model.image_size", model.image_size, 1, optional=True)
    if not data.name:
        _fail("data.name", data.name, "name a dataset; `robustft list datasets` shows them.")
    _at_least("data.image_size", data.image_size, 1, optional=True)
    _fraction("data.val_fraction", data.val_fraction)
    for key in ("limit_train", "limit_val", "limit_test"):
        _at_least(f"data.{key}", getattr(data, key), 1, optional=True)
    for index, name in enumerate(data.augment or []):
        if not name.strip():
            _fail(f"data.augment[{index}]", name, "name an augmentation like flip, color_jitter:0.25, rotation:10.")
    if data.ood != "auto":
        for index, name in enumerate(data.ood):
            if not name.strip():
                _fail(f"data.ood[{index}]", name, "name an OOD split like fashion-mnist@gaussian_noise:3.")


def _check_objective_takes_the_schedule(objective: Any, eps: Any) -> None:
    """The standard objective ignores eps: a perturbation schedule with it would train standard fine-tuning under
    the schedule's name (and log its eps), so only ``zero`` (the default under it) is accepted."""
    if objective.name == "standard" and canonical_eps_schedule(eps.schedule) != "zero":
        raise ConfigError(
            f"objective.name=standard trains on clean images and ignores eps, but eps.schedule={eps.schedule!r} asks "
            f"for a training perturbation: the run would be standard fine-tuning labelled {eps.schedule!r}. For "
            "adversarial training set objective.name=adversarial (or trades); for standard fine-tuning set "
            "eps.schedule=zero (or leave it unset)."
        )


def _check_objective(objective: Any) -> None:
    if not objective.name:
        _fail("objective.name", objective.name, "use standard, adversarial or trades.")
    _at_least("objective.steps", objective.steps, 1)
    _positive("objective.step_size", objective.step_size, optional=True, example="1/255")
    _at_least("objective.beta", objective.beta, 0)


def _check_eps(eps: Any) -> None:
    eps.schedule = canonical_eps_schedule(eps.schedule)  # paper B's names (fix = RFT-fix) are aliases
    if eps.schedule not in EPS_SCHEDULE_NAMES:
        close = difflib.get_close_matches(eps.schedule, [*EPS_SCHEDULE_NAMES, *EPS_SCHEDULE_ALIASES], n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"eps.schedule={eps.schedule!r} is not an eps schedule.{hint} Valid: {', '.join(EPS_SCHEDULE_NAMES)} "
            "(`robustft list schedules` describes them)."
        )
    same_kind = isinstance(eps.t1, int) == isinstance(eps.t2, int)
    if eps.schedule == "scheduled" and same_kind and eps.t1 > eps.t2:
        raise ConfigError(
            f"eps.t1={eps.t1!r} is after eps.t2={eps.t2!r}: eps starts growing at T1 and reaches eps.value at T2, "
            "so T1 <= T2 (paper B: t1=12, t2=37 of 50 epochs, or t1=0.25, t2=0.75)."
        )
    _at_least("eps.patience", eps.patience, 1)
    _fraction("eps.tolerance", eps.tolerance)


def _check_ramp_fits_the_run(eps: Any, train: Any) -> None:
    """Whole-count T1/T2 against the run's length when the config states it in their unit (epochs with
    ``per: epoch``, steps with ``per: step``); otherwise the trainer checks them once it knows the length."""
    total = train.epochs if eps.per == "epoch" else train.steps
    if total is not None:
        check_ramp_within_run(eps.schedule, eps.t1, eps.t2, eps.per, int(total),
                              f"train.{'epochs' if eps.per == 'epoch' else 'steps'}={total}")


def _check_optim(optim: Any) -> None:
    _at_least("optim.batch_size", optim.batch_size, 1)
    _positive("optim.lr", optim.lr, example="3e-4")
    _positive("optim.head_lr", optim.head_lr, optional=True, example="1e-3")
    _at_least("optim.weight_decay", optim.weight_decay, 0)
    _at_least("optim.head_weight_decay", optim.head_weight_decay, 0, optional=True)
    if len(optim.betas) != 2 or not all(0.0 <= b < 1.0 for b in optim.betas):
        _fail("optim.betas", optim.betas, "AdamW takes two betas in [0, 1), e.g. [0.9, 0.999].")
    _positive("optim.grad_clip", optim.grad_clip, optional=True, example="1.0")
    _at_least("optim.accumulate", optim.accumulate, 1)


def _check_train(train: Any) -> None:
    if (train.epochs is None) == (train.steps is None):
        both = "both are set" if train.epochs is not None else "neither is set"
        raise ConfigError(
            f"train.epochs={train.epochs!r} and train.steps={train.steps!r}: {both}, but exactly one must be, "
            "e.g. train.epochs=3 or train.steps=500 (set the other to null)."
        )
    _at_least("train.epochs", train.epochs, 1, optional=True)
    _at_least("train.steps", train.steps, 1, optional=True)


def _check_eval(evaluation: Any) -> None:
    parse_evaluation_spec(evaluation.schedule)
    _at_least("eval.subset", evaluation.subset, 1, optional=True)
    _at_least("eval.batch_size", evaluation.batch_size, 1)
    for index, split in enumerate(evaluation.splits):
        if split not in _SPLITS:
            _fail(f"eval.splits[{index}]", split, f"splits are {', '.join(_SPLITS)} (OOD splits: eval.ood=true).")
    for index, split in enumerate(evaluation.loss):
        if split not in evaluation.splits:
            _fail(f"eval.loss[{index}]", split, f"the loss is recorded on evaluated splits ({evaluation.splits}); add "
                  f"it to eval.splits too, e.g. eval.splits=[{','.join(dict.fromkeys([*evaluation.splits, split]))}].")
    for index, eps in enumerate(evaluation.eps):
        _positive(f"eval.eps[{index}]", eps, example="1/255")
    _positive("eval.curve", evaluation.curve, optional=True, example="4/255")
    # The largest eps each attack is asked to evaluate: the tracking attack runs at eval.eps and along the curve
    # (up to eval.curve), the final one at eval.eps and at the curve's end.
    largest = max([*evaluation.eps, evaluation.curve or 0.0], default=0.0)
    where = "eval.curve" if evaluation.curve and evaluation.curve >= max(evaluation.eps, default=0.0) else "eval.eps"
    _check_attack("eval.attack", evaluation.attack, largest, where)
    if evaluation.final is not None:
        _check_attack("eval.final", evaluation.final, largest, where)


# Attacks whose step size is fixed by the config (robustft.attacks: pgd); APGD adapts its own, FGSM steps eps.
# Kept here as names so that validating a config does not import the attacks (torch); a test checks the list.
STEP_SIZE_ATTACKS = ("pgd",)


def _check_attack(key: str, attack: AttackSpec, largest_eps: float, where: str) -> None:
    name = attack.name
    if not name:
        _fail(f"{key}.name", name, "name an attack; `robustft list attacks` shows them.")
    _at_least(f"{key}.steps", attack.steps, 1)
    _at_least(f"{key}.restarts", attack.restarts, 1)
    step_size = attack.step_size  # positive: parse_step_size checked it when the config was built
    if step_size is not None and name in STEP_SIZE_ATTACKS and largest_eps > 0:
        check_reach(key, name, attack.steps, step_size, largest_eps, where)


def check_reach(key: str, name: str, steps: int, step_size: StepSize, eps: float, where: str,
                spell: Callable[[str, object], str] | None = None) -> None:
    """Refuses steps x step_size < eps: such an attack cannot reach the eps it is evaluated at, so its accuracy
    there is that of a weaker attack (a PGD-10 with step 0.25/255 moves at most 2.5/255, short of 4/255).

    The one check for a config's attacks and ``robustft eval``'s command line.

    Args:
        key: what the message starts with: the config section (``eval.attack``) or the command (``robustft eval``).
        name: the attack's name (``pgd``).
        steps: gradient steps per restart, >= 1.
        step_size: pixel units (0.1/255 as a float) or relative to eps (a RelativeStep, ``0.25eps``).
        eps: the largest radius the attack is asked to evaluate, pixel units.
        where: the setting that asks for ``eps`` (``eval.curve``, ``--eps``).
        spell: ``(option, value) -> text``, how the fix is written; default the config's ``key.option=value``.

    Raises:
        ConfigError: the attack cannot reach ``eps``; the message names both fixes.
    """
    def format_eps(value: float) -> str:
        return f"{value * 255:.4g}/255"

    def config_spelling(option: str, value: object) -> str:
        return f"{key}.{option}={value}"

    spell = spell or config_spelling
    step = step_in_pixels(step_size, eps)
    if steps * step >= eps * (1 - 1e-9):
        return
    shown = str(step_size) if isinstance(step_size, RelativeStep) else format_eps(step_size)
    ratio = relative_step(step_size)
    needed = math.ceil(1 / ratio - 1e-9) if ratio is not None else math.ceil(eps / step - 1e-9)
    # A relative step that reaches eps in these steps: paper A's 0.25eps from 4 steps on, eps/steps below.
    relative, why = ("0.25eps", "paper A's 0.25/255 at 1/255, scaled to every eps") if steps >= 4 else \
        ("eps" if steps == 1 else f"eps/{steps}", "scaled to every eps")
    raise ConfigError(
        f"{key}: {name} with steps={steps} and step_size={shown} moves at most {format_eps(steps * step)} from its "
        f"start, less than eps={format_eps(eps)} that {where} asks it to evaluate, so its accuracy there would be "
        f"that of a weaker attack. Make the step relative to eps, e.g. {spell('step_size', relative)} ({why}), or "
        f"use {spell('steps', needed)} or more."
    )


def _check_checkpoint(checkpoint: Any) -> None:
    split = checkpoint.best_metric.split("/", 1)[0]
    if "/" not in checkpoint.best_metric or not (split in _SPLITS or split.startswith("ood:")):
        _fail(
            "checkpoint.best_metric",
            checkpoint.best_metric,
            "write it as SPLIT/ATTACK/METRIC, e.g. val/clean/accuracy or val/pgd/robust_accuracy.",
        )


def _check_detect(detect: Any) -> None:
    if detect.onset_threshold is not None and not 0.0 < detect.onset_threshold < 1.0:
        _fail("detect.onset_threshold", detect.onset_threshold, "an accuracy in (0, 1), e.g. 0.05 (or null).")
    _fraction("detect.failure_threshold", detect.failure_threshold, optional=True)
    _fraction("detect.suboptimal_gap", detect.suboptimal_gap, closed_right=True)
