"""Where a run reports as it goes: a tqdm bar on stderr, TensorBoard and MLflow when installed and enabled.

Missing optional back-ends are skipped with one clear log line, never an error: a sweep should not die
because a laptop lacks TensorBoard.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from robustft.units import metric_key

log = logging.getLogger("robustft.train")


def record_key(item: dict[str, Any]) -> str:
    """``split/attack/metric`` (+ ``@eps`` for robust records): ``val/clean/accuracy``, ``test/pgd/accuracy@1/255``.

    The one naming of :func:`robustft.units.metric_key`, for records as the trainer writes them.
    """
    attack = item.get("attack") if isinstance(item.get("attack"), str) else None
    return metric_key(item["split"], attack, item["metric"], item.get("eps"))


class RunLoggers:
    """Progress bar + optional TensorBoard/MLflow sinks for one run."""

    def __init__(self, run_path: Path, total_steps: int, start_step: int, progress: bool, tensorboard: bool,
                 mlflow: bool, run_name: str) -> None:
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, file=sys.stderr, desc=run_name,
                            dynamic_ncols=True, leave=True)
        self.tensorboard = self.mlflow = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(run_path / "tensorboard"))
            except ImportError:
                log.warning("TensorBoard logging skipped: install `tensorboard` to enable it (pip install tensorboard)")
        if mlflow:
            try:
                import mlflow as mlflow_module

                mlflow_module.start_run(run_name=run_name)
                self.mlflow = mlflow_module
            except ImportError:
                log.warning("MLflow logging skipped: install `mlflow` to enable it (pip install mlflow)")
        self.last: dict[str, float] = {}

    def step(self, epoch: int, loss: float, eps: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            shown = {"epoch": epoch, "loss": f"{loss:.3f}", "eps": f"{eps * 255:.2f}/255", **self.last}
            self.bar.set_postfix(shown, refresh=False)

    def records(self, records: list[dict[str, Any]]) -> None:
        for item in records:
            if item["metric"] == "accuracy" and item["split"] in ("val", "test"):
                label = "clean" if item["attack"] == "clean" else "robust"
                self.last[f"{item['split']}_{label}"] = f"{item['value']:.3f}"
            if item.get("value") is None:
                continue
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(record_key(item), item["value"], item["step"])
            if self.mlflow is not None:
                self.mlflow.log_metric(record_key(item).replace("@", "_at_").replace(":", "_"), item["value"],
                                       step=item["step"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.mlflow is not None:
            self.mlflow.end_run()
