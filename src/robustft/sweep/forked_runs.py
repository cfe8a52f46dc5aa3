"""A study's ``robustft train`` processes forked from one that imported torch and robustft once.

Why: a ``robustft train`` subprocess spends about 7 s before its first step on this project's 2-core machine
(interpreter start and importing torch, torchvision, timm and robustft: ~5.5 s of it), the same 7 s for each of a
study's runs; the demo's ten runs paid 70 CPU-seconds for it, 35 s of its wall time on two cores. Here each run is
a child forked from a ``multiprocessing`` fork server whose process imported those modules once: a fresh process
per run as before (its own memory, its own session, a crash or an OOM kills that run only; the same
``robustft.cli.main(["train", ...])`` the command line runs), without the repeated start.

Safety of forking after ``import torch``: the server imports and never computes, so no OpenMP or MKL thread pool
exists when it forks, and CUDA is never initialised in it (a child may use CUDA). The OpenMP runtime read
``OMP_NUM_THREADS`` when the server loaded it, so each child sets its thread count with ``torch.set_num_threads``.

``ROBUSTFT_FORK_RUNS=0`` (or a platform without the fork server) keeps plain ``robustft train`` subprocesses.
The standard library's fork server does the forking; nothing else does this job, so the handle below is ours.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from multiprocessing.connection import wait as wait_for_ready
from pathlib import Path

ENV = "ROBUSTFT_FORK_RUNS"
ENTRY_POINT = "robustft.cli"  # the module whose main(argv) is the `robustft` command
# What a training run imports; the server imports them once (the rest a run needs is imported by these).
PRELOAD = ["torch", "torchvision", "robustft.cli", "robustft.cli.train_cmd", "robustft.training.trainer",
           "robustft.models.build", "robustft.data", "robustft.strategies", "robustft.attacks"]
POLL_SECONDS = 0.2


def fork_runs_available() -> bool:
    """Whether runs are forked from the preloaded server: Linux, the fork server available, ``ROBUSTFT_FORK_RUNS``
    not ``0``."""
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    return sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()


def start_server() -> bool:
    """Starts the fork server now, if runs are forked (``fork_runs_available``); returns whether it did.

    The server imports ``PRELOAD`` in its own process while the caller goes on: a command that calls this first
    does its own imports and plans its runs on the other core meanwhile, instead of before the server's ~5.5 s.
    """
    if not fork_runs_available():
        return False
    _context()
    multiprocessing.forkserver.ensure_running()
    return True


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class ForkedRun:
    """A ``robustft`` command run in a forked child, handled like ``subprocess.Popen``: ``pid``, ``poll()``,
    ``wait()``, ``send_signal()``; exit statuses as Popen's (negative: killed by that signal).

    Args:
        argv: the command's arguments after ``robustft`` (``["train", CONFIG, "--quiet"]``).
        log: the file the child's stdout and stderr are appended to.
        env: variables set in the child's environment (``OMP_NUM_THREADS`` also sets its torch thread count).
    """

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self._lock = threading.Lock()  # one reader of the exit status at a time (the fork server sends it once)
        self.process = _context().Process(target=_child, args=(list(argv), str(log), dict(env)), daemon=False)
        self.process.start()
        self.pid = self.process.pid

    def poll(self) -> int | None:
        with self._lock:
            return self.process.exitcode

    def wait(self) -> int:
        while True:
            status = self.poll()
            if status is not None:
                return status
            wait_for_ready([self.process.sentinel], timeout=POLL_SECONDS)

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:  # exited between the two lines
                pass


def _child(argv: list[str], log: str, env: dict[str, str]) -> None:
    """The forked child: its own session, output to ``log``, the thread count, then the command."""
    os.setsid()  # as start_new_session: a terminal's Ctrl-C reaches the study only, which stops its runs
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)  # the trainer installs its own handlers
    os.environ.update(env)
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    import torch

    threads = env.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    # The command by name, as the subprocess launcher's `python -m robustft` names it (the sweep layer does not
    # import the command line's: tests/test_layering.py); preloaded, so this import costs nothing.
    main = importlib.import_module(ENTRY_POINT).main
    # what `python -m robustft ...` would have in sys.argv (env.json and the run lock record it)
    sys.argv = [str(Path(__file__).resolve().parents[1] / "__main__.py"), *argv]
    status = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status)
