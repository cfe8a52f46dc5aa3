"""Where a run reports as it goes: progress on stderr, TensorBoard and MLflow when installed and enabled.

Progress has two forms. On a terminal, a tqdm bar whose description names the phase (training, evaluation,
final evaluation) and whose postfix shows the latest accuracies. When stderr is not a terminal (a log file, a
sweep's pipe, ``tail -f``), tqdm's carriage-return frames would pile up into one unreadable line, so the run
writes one plain, flushed line per phase and per evaluation point instead.

Missing optional back-ends are skipped with one clear log line, never an error: a sweep should not die
because a laptop lacks TensorBoard.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from robustft.config.units import format_eps
from robustft.runs.records import record_key

log = logging.getLogger("robustft.training.trainer")


def progress_values(records: list[dict[str, Any]]) -> dict[str, float]:
    """The accuracies worth showing while training: ``{"val/clean": 0.78, "test/pgd@1/255": 0.31, ...}``."""
    shown = {}
    for item in records:
        if item["split"] == "optim" or item.get("value") is None:
            continue
        if item["metric"] in ("accuracy", "expected_robustness"):
            key = record_key(item).replace("/accuracy", "").replace("/expected_robustness", "/E.adv")
            shown[key] = float(item["value"])
    return shown


class RunLoggers:
    """Progress (a bar on a terminal, plain lines otherwise) + optional TensorBoard/MLflow sinks for one run.

    The trainer calls :meth:`step` after each optimiser step, :meth:`evaluating` before an evaluation point and
    :meth:`records` with its records after it.
    """

    def __init__(self, run_path: Path, total_steps: int, start_step: int, progress: bool, tensorboard: bool,
                 mlflow: bool, run_name: str, *, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.run_name, self.total_steps = run_name, total_steps
        self.bar = None
        self.plain = False
        if progress:
            if tty is None:
                tty = bool(getattr(self.stream, "isatty", lambda: False)())
            if tty:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total_steps, initial=start_step, file=self.stream, desc=run_name,
                                dynamic_ncols=True, leave=True)
            else:
                self.plain = True
                start = f"resumed at step {start_step}" if start_step else "from step 0"
                self._line(f"training: {total_steps} steps, {start}")
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
        self.last: dict[str, str] = {}
        self.loss_sum, self.loss_count, self.epoch, self.eps = 0.0, 0, 0, 0.0
        self.eval_started: float | None = None
        self.phase = "training"

    def _line(self, message: str) -> None:
        print(f"robustft: {self.run_name}: {message}", file=self.stream, flush=True)

    def step(self, epoch: int, loss: float, eps: float) -> None:
        self.loss_sum, self.loss_count, self.epoch, self.eps = self.loss_sum + loss, self.loss_count + 1, epoch, eps
        if self.bar is not None:
            self.bar.update(1)
            shown = {"epoch": epoch, "loss": f"{loss:.3f}", "eps": format_eps(eps), **self.last}
            self.bar.set_postfix(shown, refresh=False)

    def evaluating(self, step: int, final: bool) -> None:
        """An evaluation point starts (``final``: the last one, with the strong final attack if configured)."""
        self.phase = "final evaluation" if final else "evaluation"
        self.eval_started = time.perf_counter()
        if self.bar is not None:
            self.bar.set_description(f"{self.run_name} [{self.phase}]", refresh=True)
        elif self.plain and final:
            self._line(f"final evaluation at step {step}")

    def records(self, records: list[dict[str, Any]]) -> None:
        values = progress_values(records)
        for key, value in values.items():
            self.last[key] = f"{value:.3f}"
        if records and (self.bar is not None or self.plain):
            self._show_point(records[0]["step"], values)
        for item in records:
            if item.get("value") is None:
                continue
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(record_key(item), item["value"], item["step"])
            if self.mlflow is not None:
                self.mlflow.log_metric(record_key(item).replace("@", "_at_").replace(":", "_"),
                                       item["value"], step=item["step"])

    def _show_point(self, step: int, values: dict[str, float]) -> None:
        seconds = time.perf_counter() - self.eval_started if self.eval_started is not None else None
        if self.bar is not None:
            self.bar.set_description(self.run_name, refresh=False)
            self.bar.set_postfix({"epoch": self.epoch, "eps": format_eps(self.eps), **self.last}, refresh=True)
        else:
            loss = f" loss {self.loss_sum / self.loss_count:.3f}" if self.loss_count else ""
            accuracies = " ".join(f"{key} {value:.3f}" for key, value in values.items())
            took = f" ({self.phase} {seconds:.1f} s)" if seconds is not None else ""
            self._line(f"step {step}/{self.total_steps} epoch {self.epoch}{loss} eps {format_eps(self.eps)} | "
                       f"{accuracies}{took}")
        self.loss_sum, self.loss_count, self.eval_started, self.phase = 0.0, 0, None, "training"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.mlflow is not None:
            self.mlflow.end_run()
