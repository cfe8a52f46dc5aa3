"""Stopping a training run on SIGINT (Ctrl-C) or SIGTERM without losing its progress.

Before this, Ctrl-C raised ``KeyboardInterrupt`` wherever the trainer was, no checkpoint was written and the run
resumed from its last evaluation point: on paper A's schedule, thousands of steps back. Now, while the trainer
runs inside :class:`StopRequest`, a first stop signal is only recorded; the trainer looks at it between two
optimiser steps (a step is never half done: its optimiser update, running sums and RNG draws go together), writes
``last.pt`` at the current step and raises :class:`RunInterrupted`, which names the command that resumes the run.
An evaluation can take minutes, so it is the exception: a signal during one aborts it at once
(:meth:`StopRequest.abortable`; it changes no training state), the checkpoint is written at the step being
evaluated, marked as not evaluated, and the resumed run evaluates that step first. A second signal stops at once;
the run then resumes from its last checkpoint.

The exit status is the shells' ``128 + signal`` (130 for SIGINT, 143 for SIGTERM), which ``robustft sweep`` reads as
"interrupted" (it forwards SIGINT to its ``robustft train`` children, see robustft.sweep.interrupt). Signal handlers
run in the main thread only, so a run trained in another thread (a Ray worker) keeps the old behaviour. A signal
ignored when training starts (``nohup``, a script's ``cmd &``) stays ignored.
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``SIGINT`` for ``signal.SIGINT`` (``signal <n>`` for a number without a name)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def resume_command(run: str | Path) -> str:
    """``robustft train --resume RUN``, quoted for a shell."""
    return shlex.join(["robustft", "train", "--resume", str(run)])


class StopNow(KeyboardInterrupt):
    """Raised by the signal handler itself: in an evaluation (first signal) or anywhere (second signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunInterrupted(KeyboardInterrupt):
    """A training run stopped by a signal; ``robustft train --resume RUN`` continues it.

    A ``KeyboardInterrupt``, so code unaware of it (a notebook, pytest) stops as on Ctrl-C.

    Attributes:
        signum: the signal received.
        run: the run directory.
        step: optimiser steps done when it stopped.
        saved: ``last.pt`` holds this step; False after a second signal, when the run resumes from its last
            checkpoint (written at every evaluation point), or from the start without one.
    """

    def __init__(self, signum: int, run: str | Path, step: int, *, saved: bool) -> None:
        super().__init__(signum)
        self.signum, self.run, self.step, self.saved = signum, Path(run), step, saved

    @property
    def exit_status(self) -> int:
        """``128 + signum``: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.signum)

    @property
    def resume_command(self) -> str:
        return resume_command(self.run)

    def __str__(self) -> str:
        head = f"training stopped by {signal_name(self.signum)} at step {self.step}"
        last = self.run / "checkpoints" / "last.pt"
        if self.saved:
            return f"{head}; checkpoint saved at step {self.step} ({last})"
        if not last.is_file():
            return f"{head}, at once (a second signal), before its first checkpoint: a resume starts the run over"
        return f"{head}, at once (a second signal): it resumes from its last checkpoint (the last evaluation point)"


class StopRequest:
    """While entered (in the main thread), SIGINT and SIGTERM are recorded, not acted on; see the module docstring.

    Attributes:
        signum: the first stop signal received, or None.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._abortable = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or self._abortable:
            self.signum = self.signum or signum
            raise StopNow(signum)
        self.signum = signum  # acted on between two steps (StopRequest.requested)

    @contextmanager
    def abortable(self) -> Iterator[None]:
        """A stretch (an evaluation) that a stop signal ends at once with :class:`StopNow`, even the first one.

        Raises:
            StopNow: on entry when a signal is already pending, or from the handler inside.
        """
        if self.signum is not None:
            raise StopNow(self.signum)
        self._abortable = True
        try:
            yield
        finally:
            self._abortable = False

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
