"""Who trains a run in a store: a lease renewed by a heartbeat, taken over when its holder stops renewing.

``robustft.runs.lock`` (a kernel ``flock``) is released when its holder dies, but only on one machine: a lock
held on a node that died, or a PID, means nothing to another node, and an object store has no lock at all. So a
run in a store (``robustft.runs.remote_store``) is owned through ``<name>/lease.json``::

    {"token": "<uuid of the attempt>", "holder": {"pid", "host", "node_id", ...}, "beat": 17,
     "acquired_at": <time.time()>, "renewed_at": <time.time()>, "seconds": 60}

- The holder rewrites it every ``seconds / 4`` (a background thread: ``beat`` + 1), and checks it still holds it
  before every sync of its files (:meth:`StoreLease.check`); one that lost it stops before writing again.
- A claimant takes a missing lease at once. A held one it takes only when its holder has stopped renewing: the
  record has not changed for ``seconds`` as measured by the claimant's own clock (a dead or frozen node), or its
  ``renewed_at`` is more than ``STALE_FACTOR * seconds`` old (a lease left long ago; the factor tolerates clocks
  off by up to twice the lease). A live holder keeps renewing, so the claimant gives up after ``wait`` seconds
  (:class:`LeaseHeldError`, a ``RunLockedError``: the sweep reports the run as running elsewhere).
- Stores have no compare-and-swap, so a claim is write, wait ``settle`` seconds, read back: of claimants that
  wrote within ``settle`` of each other only the last writer reads its own token, and a holder's renewal (read,
  then write at once) lands before a claimant verifies. Two attempts therefore never both believe they hold the
  run, provided a read-then-write takes less than ``settle`` (``min(1 s, seconds / 8)``).
- Releasing deletes the file (only if still ours), so the next attempt starts at once.

Timestamps are the holder's ``time.time()``; taking over rests on the claimant's own monotonic clock, so skewed
node clocks delay a takeover (up to ``STALE_FACTOR * seconds``) but do not cause one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from robustft.errors import RobustftError
from robustft.runs.lock import RunLockedError
from robustft.runs.remote_store import LEASE_FILE, RunStore, StoreError

log = logging.getLogger("robustft.runs.lease")

STALE_FACTOR = 3.0


class LeaseHeldError(RunLockedError):
    """Another live attempt holds the run's lease in the store (it renewed it while this one waited)."""


class LeaseLostError(RobustftError):
    """This attempt no longer holds its run's lease (another attempt took it over): it must stop writing."""


class StoreLease:
    """The lease of run ``name`` in ``store`` for this attempt.

    Example:
        >>> with StoreLease(store, "full", seconds=60).acquire() as lease:  # renewed in the background
        ...     lease.check()  # before writing into the store: raises LeaseLostError if taken over
    """

    def __init__(self, store: RunStore, name: str, seconds: float = 60.0, holder: dict[str, Any] | None = None) \
            -> None:
        if seconds <= 0:
            raise ValueError(f"lease seconds={seconds} must be positive")
        self.store, self.name, self.seconds = store, name, float(seconds)
        self.token = uuid.uuid4().hex
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), **(holder or {})}
        self.settle = min(1.0, self.seconds / 8)
        self.poll = min(1.0, self.seconds / 10)
        self.beat = 0
        self.acquired_at: float | None = None
        self._renewed = 0.0  # monotonic time of the last successful write of our record
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()  # the heartbeat and the training thread never write the record at once

    @property
    def held(self) -> bool:
        return self.acquired_at is not None and self._lost is None

    def read(self) -> dict[str, Any] | None:
        """The lease record in the store, or None when there is none (a torn or foreign file counts as none)."""
        text = self.store.read_text(self.name, LEASE_FILE)
        try:
            record = json.loads(text) if text else None
        except ValueError:
            return None
        return record if isinstance(record, dict) and record.get("token") else None

    def acquire(self, wait: float | None = None, heartbeat: bool = True) -> StoreLease:
        """Takes the lease: at once when free, after its holder stopped renewing for ``seconds``, never from a
        live holder.

        Args:
            wait: how long to wait for a held lease to go stale (default ``2 * seconds``: a holder that just
                died is seen not to renew within one lease period).
            heartbeat: renew in a background thread until :meth:`release`.

        Raises:
            LeaseHeldError: another attempt kept renewing the lease for ``wait`` seconds.
            StoreError: the store cannot be read or written.
        """
        wait = 2 * self.seconds if wait is None else wait
        deadline = time.monotonic() + wait
        seen: dict[str, Any] | None = None
        seen_at = time.monotonic()
        while True:
            current = self.read()
            if current is not None and current != seen:
                seen, seen_at = current, time.monotonic()  # new or renewed since the last look: alive then
            if current is None or current["token"] == self.token or self._stale(current, seen_at):
                if self._claim():
                    break
                seen = None  # another claimant won; watch its record from now on
                continue
            if time.monotonic() >= deadline:
                raise LeaseHeldError(
                    f"run {self.name} in {self.store.uri} is being trained by {_describe(current)}, which renewed "
                    f"its lease within the last {self.seconds:g} s. Wait for it to finish (it writes the run into "
                    "the store), or stop it; its lease then lapses and the run resumes from its last checkpoint.",
                    current.get("holder"))
            time.sleep(self.poll)
        if heartbeat:
            self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _stale(self, record: dict[str, Any], seen_at: float) -> bool:
        if time.monotonic() - seen_at >= self.seconds:
            return True  # unchanged for a whole lease period by our clock: its holder stopped renewing
        renewed = record.get("renewed_at")
        return isinstance(renewed, (int, float)) and time.time() - renewed > STALE_FACTOR * self.seconds

    def _claim(self) -> bool:
        self.beat = 0
        self.acquired_at = time.time()
        self._write()
        time.sleep(self.settle)  # a claimant or renewal that read before our write writes within settle
        current = self.read()
        if current is None or current["token"] != self.token:
            self.acquired_at = None
            return False
        self._lost = None
        return True

    def _write(self) -> None:
        now = time.time()
        record = {"token": self.token, "holder": self.holder, "beat": self.beat, "acquired_at": self.acquired_at,
                  "renewed_at": now, "seconds": self.seconds}
        with self._io:
            self.store.write_text(self.name, LEASE_FILE, json.dumps(record) + "\n")
        self._renewed = time.monotonic()

    def renew(self) -> None:
        """Rewrites the record with the next ``beat`` if it is still ours.

        Raises:
            LeaseLostError: another attempt holds it now.
        """
        current = self.read()
        if current is None or current["token"] != self.token:
            self._lost = f"taken over by {_describe(current)}" if current else "its lease file was deleted"
            raise LeaseLostError(self._lost_message())
        self.beat += 1
        self._write()

    def check(self) -> None:
        """Raises :class:`LeaseLostError` unless this attempt still holds the lease (read from the store now).

        Also when the heartbeat could not renew it for ``3/4`` of a lease period: another attempt may be taking
        it over, so this one stops writing.
        """
        if self._lost is None and self.acquired_at is not None:
            current = self.read()
            if current is None or current["token"] != self.token:
                self._lost = f"taken over by {_describe(current)}" if current else "its lease file was deleted"
            elif time.monotonic() - self._renewed > 0.75 * self.seconds:
                self._lost = f"not renewed for {time.monotonic() - self._renewed:.0f} s"
        if self.acquired_at is None or self._lost is not None:
            raise LeaseLostError(self._lost_message())

    def release(self) -> None:
        """Stops the heartbeat and deletes the record if it is still ours (a successor's is left alone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.acquired_at is None:
            return
        try:
            current = self.read()
            if current is not None and current["token"] == self.token:
                with self._io:
                    self.store.remove(self.name, LEASE_FILE)
        except StoreError as error:  # the lease lapses by itself; the next attempt waits one period longer
            log.warning("could not release the lease of %s: %s", self.name, error)
        self.acquired_at = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                self.renew()
            except LeaseLostError:
                log.warning("run %s: %s", self.name, self._lost_message())
                return
            except StoreError as error:  # transient: check() fails the run once the lease may have lapsed
                log.warning("run %s: cannot renew its lease: %s", self.name, error)

    def _lost_message(self) -> str:
        why = self._lost or "it was never acquired"
        return (f"this attempt no longer holds run {self.name}'s lease in {self.store.uri} ({why}); it stops so "
                "that one attempt writes the run. The run continues from its last checkpoint in the store.")

    def __enter__(self) -> StoreLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _describe(record: dict[str, Any] | None) -> str:
    holder = (record or {}).get("holder") or {}
    where = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    return where + (f" (Ray node {holder['node_id'][:12]})" if holder.get("node_id") else "")
