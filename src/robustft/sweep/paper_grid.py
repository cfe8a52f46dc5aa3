"""The papers' full grids as data, and choosing a subset of them (``robustft reproduce paper-b --scale full
--models swin-b --eps 8/255``).

Every run of a grid has a value on each of five axes: ``models``, ``datasets``, ``eps``, ``strategies`` and
``schedules`` (paper A trains one model, without perturbation, so its ``schedules`` axis is ``standard``; paper B
fine-tunes fully, so its ``strategies`` axis is ``full``). An axis value has a key (what the selection flags and
the run names use), the value a config holds (``model.name``, ``data.name``...) and whether it belongs to the
paper's main grid; values outside it (Imagenette, eps_g other than 4/255 and 8/255) are valid selections only.

Paper A (Li et al., ICCV 2025): ViT-B/16 in21k x the seven strategies x CIFAR-10, CIFAR-100, Caltech-256, CUB-200 and
Stanford Dogs evaluated with PGD-15 at 1/255 on paper A's schedule (eps ``1/255``), plus DomainNet's six domains,
each trained on alone with the other five as its OOD splits, clean only (eps ``clean``): 7 x 5 + 7 x 6 = 77 runs.

Paper B: six backbones x CUB-200, Stanford Dogs, Caltech-256, Stanford Cars, FGVC-Aircraft (30 configurations,
as its paired t-tests) x eps_g in {4/255, 8/255} x the five perturbation schedules, plus one standard fine-tuning
reference per configuration (eps 0, evaluated at every selected eps_g, so one reference serves them all):
30 x (5 x 2 + 1) = 330 runs. The open_clip ConvNeXt is timm's ``convnext_base.clip_laion2b`` (open_clip's
LAION-2B ConvNeXt-B image tower; pretrained at 256 px, run at paper B's 224 px like every backbone).

Dataset values are registry names (``robustft list datasets``); ``cub200`` and ``stanford-dogs`` are the names
their loaders register. Building the grid needs neither data nor weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from robustft.config.units import parse_eps
from robustft.errors import ConfigError

AXES = ("models", "datasets", "eps", "strategies", "schedules")

# Paper B's standard fine-tuning reference: its RFT-fix config without the perturbation.
REFERENCE_OVERRIDES = ("objective.name=standard", "eps.schedule=zero")
SCHEDULE_LABELS = {"standard": "standard (reference)", "fix": "RFT-fix", "scheduled": "Epsilon-Scheduling"}
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")


@dataclass(frozen=True)
class AxisValue:
    """One value of a grid axis.

    Attributes:
        key: what the selection flags and run names use (``swin-b``, ``cub200``, ``8/255``).
        value: what the config holds (``timm:swin_base_patch4_window7_224.ms_in22k_ft_in1k``, ``cub200``, ``8/255``).
        in_paper: part of the paper's main grid (the default selection); False: selectable only.
    """

    key: str
    value: str
    in_paper: bool = True


@dataclass(frozen=True)
class GridPoint:
    """One run of a grid: its name, summary label, config file and overrides, and its value on each axis."""

    name: str
    label: str
    config: Path
    overrides: tuple[str, ...]
    axes: tuple[tuple[str, str], ...]


def _values(*pairs: tuple[str, str], extra: Sequence[str] = ()) -> tuple[AxisValue, ...]:
    return tuple(AxisValue(key, value, key not in extra) for key, value in pairs)


PAPER_A: dict[str, tuple[AxisValue, ...]] = {
    "models": _values(("vit-b16-in21k", "hf:google/vit-base-patch16-224-in21k")),
    "datasets": _values(("cifar10", "tv:CIFAR10"), ("cifar100", "tv:CIFAR100"), ("caltech256", "tv:Caltech256"),
                        ("cub200", "cub200"), ("stanford-dogs", "stanford-dogs"),
                        *((f"domainnet-{d}", f"domainnet:{d}") for d in DOMAINNET_DOMAINS)),
    "eps": _values(("1/255", "1/255"), ("clean", "0")),  # clean: DomainNet's runs, evaluated without attack
    "strategies": _values(*((s, s) for s in ("full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter"))),
    "schedules": _values(("standard", "zero")),
}

PAPER_B: dict[str, tuple[AxisValue, ...]] = {
    "models": _values(("vit-augreg", "timm:vit_base_patch16_224.augreg_in1k"),
                      ("swin-b", "timm:swin_base_patch4_window7_224.ms_in22k_ft_in1k"),
                      ("convnext-b", "timm:convnext_base.fb_in22k_ft_in1k"),
                      ("resnet50-a1", "timm:resnet50.a1_in1k"),
                      ("clip-vit-b16", "timm:vit_base_patch16_clip_224.laion2b"),
                      ("clip-convnext-b", "timm:convnext_base.clip_laion2b")),
    "datasets": _values(("cub200", "cub200"), ("stanford-dogs", "stanford-dogs"), ("caltech256", "tv:Caltech256"),
                        ("stanford-cars", "tv:StanfordCars"), ("fgvc-aircraft", "tv:FGVCAircraft"),
                        ("imagenette", "tv:Imagenette"), extra=("imagenette",)),
    # 4/255 and 8/255: the main results; 1..9/255: Figure 3's RFT-fix onset sweep.
    "eps": _values(*((f"{k}/255", f"{k}/255") for k in range(1, 10)),
                   extra=tuple(f"{k}/255" for k in (1, 2, 3, 5, 6, 7, 9))),
    "strategies": _values(("full", "full")),
    "schedules": _values(("standard", "zero"), ("fix", "constant"), ("scheduled", "scheduled"),
                         ("linear", "linear"), ("uniform", "uniform"), ("auto", "auto")),
}

GRIDS = {"paper-a": PAPER_A, "paper-b": PAPER_B}


def _matches(value: AxisValue, text: str, axis: str) -> bool:
    if text in (value.key, value.value):
        return True
    if axis != "eps":
        return False
    try:  # eps written another way: 0.0313725 or 8.0/255 for 8/255
        return value.key != "clean" and abs(parse_eps(text) - parse_eps(value.value)) < 1e-9
    except ConfigError:
        return False


def pick(paper: str, axis: str, requested: Sequence[str] | None) -> list[AxisValue]:
    """The values of ``axis`` a selection names, in the grid's order (None or empty: the paper's main grid).

    Raises:
        ConfigError: a name that is not a value of the axis, with every valid one.
    """
    values = GRIDS[paper][axis]
    if not requested:
        return [v for v in values if v.in_paper]
    chosen = set()
    for text in requested:
        found = [v for v in values if _matches(v, text.strip(), axis)]
        if not found:
            valid = ", ".join(v.key + ("" if v.in_paper else " (extra)") for v in values)
            raise ConfigError(f"{paper} has no {axis} value {text.strip()!r} (--{axis}). Valid --{axis} for "
                              f"{paper}: {valid}. Give a comma list of them, e.g. --{axis} {values[0].key}; "
                              "'(extra)' values are outside the paper's main grid and run only when named.")
        chosen.add(found[0])
    return [v for v in values if v in chosen]


def parse_selection(selection: Mapping[str, str | Sequence[str] | None]) -> dict[str, list[str] | None]:
    """``{"models": "swin-b,vit-augreg", "eps": None, ...}`` -> ``{"models": ["swin-b", "vit-augreg"], ...}``.

    Raises:
        ConfigError: an axis that is not one of :data:`AXES`.
    """
    parsed: dict[str, list[str] | None] = {}
    for axis, given in selection.items():
        if axis not in AXES:
            raise ConfigError(f"{axis!r} is not a grid axis; the axes are {', '.join(AXES)}.")
        if given is None:
            parsed[axis] = None
        else:
            items = given.split(",") if isinstance(given, str) else list(given)
            parsed[axis] = [t.strip() for t in items if t.strip()] or None
    return parsed


def grid_runs(paper: str, root: Path, selection: Mapping[str, Sequence[str] | None] | None = None) -> list[GridPoint]:
    """The runs of a paper's full grid (or of the selected part of it), configs from ``root`` (configs/paper_x).

    Args:
        paper: ``paper-a`` or ``paper-b``.
        root: the folder of the paper's full-scale config files (one per strategy / schedule).
        selection: axis -> keys (see :func:`parse_selection`); a missing or None axis is the paper's main grid.

    Raises:
        ConfigError: an unknown paper or axis value, or a selection that leaves no run.
    """
    if paper not in GRIDS:
        raise ConfigError(f"unknown paper {paper!r}; use paper-a or paper-b.")
    selection = parse_selection(selection or {})
    chosen = {axis: pick(paper, axis, selection.get(axis)) for axis in AXES}
    runs = _paper_a(root, chosen) if paper == "paper-a" else _paper_b(root, chosen)
    if not runs:
        raise ConfigError(f"the selection leaves no run of {paper}'s grid (paper A evaluates DomainNet clean only: "
                          "--eps clean, and the other datasets at --eps 1/255); widen --datasets or --eps.")
    return runs


def _paper_a(root: Path, chosen: dict[str, list[AxisValue]]) -> list[GridPoint]:
    runs = []
    (model,) = chosen["models"]
    eps_keys = {e.key for e in chosen["eps"]}
    for data in chosen["datasets"]:
        domain = data.value.removeprefix("domainnet:") if data.value.startswith("domainnet:") else None
        eps = "clean" if domain else "1/255"
        if eps not in eps_keys or not chosen["schedules"]:
            continue
        if domain:  # train on one domain, the other five are its OOD splits; no attack
            others = ",".join(f"domainnet:{d}" for d in DOMAINNET_DOMAINS if d != domain)
            extra = ("eval.eps=[]", f"data.ood=[{others}]")
        else:
            extra = ("eval.eps=[1/255]",)
        for strategy in chosen["strategies"]:
            runs.append(GridPoint(f"a-{data.key}-{strategy.key}", strategy.key, root / f"{strategy.key}.yaml",
                                (f"model.name={model.value}", f"data.name={data.value}", *extra),
                                (("models", model.key), ("datasets", data.key), ("eps", eps),
                                 ("strategies", strategy.key), ("schedules", "standard"))))
    return runs


def _paper_b(root: Path, chosen: dict[str, list[AxisValue]]) -> list[GridPoint]:
    runs = []
    eps_list = chosen["eps"]
    top = max(eps_list, key=lambda e: parse_eps(e.value))
    for model in chosen["models"]:
        for data in chosen["datasets"]:
            common = (f"model.name={model.value}", f"data.name={data.value}")
            prefix = f"b-{model.key}-{data.key}"
            axes = (("models", model.key), ("datasets", data.key))
            for schedule in chosen["schedules"]:
                label = SCHEDULE_LABELS.get(schedule.key, schedule.key)
                if schedule.key == "standard":
                    # One reference per configuration, evaluated at every selected eps_g (the curve to the largest).
                    evaluated = ",".join(e.value for e in eps_list)
                    runs.append(GridPoint(f"{prefix}-standard", label, root / "fix.yaml",
                                        (*REFERENCE_OVERRIDES, *common, f"eval.eps=[{evaluated}]",
                                         f"eval.curve={top.value}"),
                                        (*axes, ("eps", "0"), ("strategies", "full"), ("schedules", "standard"))))
                    continue
                for eps in eps_list:
                    runs.append(GridPoint(f"{prefix}-{eps.key.replace('/', '_')}-{schedule.key}", label,
                                        root / f"{schedule.key}.yaml",
                                        (*common, f"eps.value={eps.value}", f"eval.eps=[{eps.value}]",
                                         f"eval.curve={eps.value}"),
                                        (*axes, ("eps", eps.key), ("strategies", "full"),
                                         ("schedules", schedule.key))))
    return runs
