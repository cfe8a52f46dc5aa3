"""A sweep's points, resolved and checked before anything runs: the grid expanded over a base config.

``robustft.sweep.grid`` names the points of the grid's cartesian product; here each point's full config is loaded
and validated, the base file's strategy options are dropped from points that choose another strategy, and the
objective, model structure and strategy are built as the trainer would (``robustft.sweep.check``), so that one
bad point fails the whole sweep with nothing started.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustft.config.files import load_config
from robustft.config.schema import to_dict
from robustft.errors import ConfigError, RobustftError
from robustft.sweep.check import PointChecker, carry_strategy_options
from robustft.sweep.grid import SweepPoint, expand_grid


def resolve_points(config: str | Path, grid: dict[str, list[str]], fixed: Sequence[str] = (),
                   output_dir: str | Path | None = None) -> tuple[list[SweepPoint], list[dict[str, Any]], Path]:
    """Expands the grid and resolves + checks every point completely before anything runs.

    Each point's config is loaded and validated, the base file's strategy options are dropped from points that
    choose another strategy (``sweep_check.carry_strategy_options``; the point's ``note`` says so), and the
    objective, model structure and strategy are built as the trainer would (``sweep_check.PointChecker``).

    Returns:
        (points, config dicts with name/output_dir set, the sweep's output directory).

    Raises:
        ConfigError: one or more bad points; the message names each point, its overrides and its error.
    """
    base = load_config(config, list(fixed))
    try:
        own = load_config(config)  # the file's own strategy, before --set and the grid
    except ConfigError:
        own = base  # a file that only validates with its --set values: those define the base
    out = Path(output_dir) if output_dir is not None else Path(base.output_dir) / base.name
    points = expand_grid(base.name, grid)
    check = PointChecker()
    resolved, configs, errors = [], [], []
    for point in points:
        chosen = [*fixed, *point.overrides]
        try:
            tree = to_dict(load_config(config, [*chosen, f"name={point.name}", f"output_dir={out}"]))
            tree, note = carry_strategy_options(tree, own.strategy.name, dict(own.strategy.options or {}), chosen)
            check(tree)
        except RobustftError as error:
            shown = " ".join(point.overrides) or "the base config"
            errors.append(f"  {point.name} ({shown}): {error}")
            continue
        resolved.append(SweepPoint(point.name, point.overrides, note))
        configs.append(tree)
    if errors:
        raise ConfigError(f"{len(errors)} of {len(points)} sweep point(s) are invalid, so nothing was started; fix "
                          "the grid, the --set values or the base config:\n" + "\n".join(errors))
    return resolved, configs, out
