"""Runs in a store every node reaches: whole-file sync in resume-safe order, the lease that hands a run from a dead
attempt to the next, and a run resumed from the store after its attempt died (no Ray: the task body in-process)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from robustft.config import from_dict
from robustft.errors import ConfigError
from robustft.runs.lease import LeaseHeldError, LeaseLostError, StoreLease
from robustft.runs.remote_store import LEASE_FILE, RunStore, RunSync, pull, read_attempts, restore
from robustft.sweep.store_run import task_device


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore((tmp_path / "store").as_uri())  # file:// and only ever read through fsspec


def local_run(path: Path, step: int) -> Path:
    """A run directory as the trainer leaves it after evaluating ``step`` (written once: config, env, lock)."""
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    if not (path / "config.yaml").exists():
        (path / "config.yaml").write_text("name: r\n")
        (path / "env.json").write_text("{}\n")
        (path / "lock").write_text("")
    with open(path / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": step}) + "\n")
    (path / "checkpoints" / "best.pt").write_bytes(b"best%d" % step)
    (path / "checkpoints" / "last.pt").write_bytes(b"last%d" % step)
    return path


# ---------------------------------------------------------------------------------------------------- sync
def test_push_uploads_in_resume_safe_order_and_skips_unchanged_files(store, tmp_path):
    local = local_run(tmp_path / "work" / "r", 0)
    sync = RunSync(store, "r", local)
    # metrics before any checkpoint, last.pt (the resume point) after the others; the local lock stays local
    assert sync.push() == ["config.yaml", "env.json", "metrics.jsonl", "checkpoints/best.pt", "checkpoints/last.pt"]
    assert sync.push() == []  # nothing changed since
    local_run(local, 10)
    (local / "summary.json").write_text("{}\n")
    assert sync.push() == ["metrics.jsonl", "checkpoints/best.pt", "checkpoints/last.pt", "summary.json"]
    # every file whole in the store, no temporary file left behind
    assert store.files("r") == ["checkpoints/best.pt", "checkpoints/last.pt", "config.yaml", "env.json",
                                "metrics.jsonl", "summary.json"]
    assert store.read_text("r", "metrics.jsonl") == '{"step": 0}\n{"step": 10}\n'


def test_restore_downloads_what_a_resume_needs_and_nothing_without_a_checkpoint(store, tmp_path):
    assert restore(store, "r", tmp_path / "empty" / "r") is None
    assert not (tmp_path / "empty").exists()
    RunSync(store, "r", local_run(tmp_path / "a" / "r", 5)).push()
    got = restore(store, "r", tmp_path / "b" / "r")
    assert got == ["config.yaml", "env.json", "metrics.jsonl", "checkpoints/last.pt"]
    assert (tmp_path / "b" / "r" / "checkpoints" / "last.pt").read_bytes() == b"last5"
    assert not (tmp_path / "b" / "r" / "checkpoints" / "best.pt").exists()  # stays in the store


def test_a_sync_that_lost_its_lease_writes_nothing(store, tmp_path):
    def lost() -> None:
        raise LeaseLostError("taken over")

    with pytest.raises(LeaseLostError):
        RunSync(store, "r", local_run(tmp_path / "w" / "r", 0), before=lost).push()
    assert store.files("r") == []


def test_move_aside_keeps_the_lease_and_pull_leaves_checkpoints_out(store, tmp_path):
    RunSync(store, "r", local_run(tmp_path / "w" / "r", 0)).push()
    store.write_text("r", LEASE_FILE, "{}")
    aside = store.move_aside("r")
    assert aside is not None and aside.startswith("r.incomplete-")
    assert store.files("r") == [LEASE_FILE]
    assert "checkpoints/last.pt" in store.files(aside)
    copied = pull(store, aside, tmp_path / "copy")
    assert sorted(copied) == ["config.yaml", "env.json", "metrics.jsonl"]
    assert store.move_aside("r") is None  # only the lease: nothing to move


def test_a_memory_store_works_the_same(tmp_path):
    store = RunStore(f"memory://robustft-test-{tmp_path.name}")
    RunSync(store, "r", local_run(tmp_path / "w" / "r", 3)).push()
    assert restore(store, "r", tmp_path / "x" / "r") is not None
    assert (tmp_path / "x" / "r" / "metrics.jsonl").read_text() == '{"step": 3}\n'


# ---------------------------------------------------------------------------------------------------- lease
def test_a_live_holder_keeps_its_lease(store):
    holder = StoreLease(store, "r", seconds=1.0).acquire()  # renewed every 0.25 s in the background
    try:
        with pytest.raises(LeaseHeldError) as caught:
            StoreLease(store, "r", seconds=1.0).acquire(wait=2.5)  # over two lease periods of renewals
        assert "is being trained by pid" in str(caught.value)
        holder.check()  # still ours
    finally:
        holder.release()
    assert store.read_text("r", LEASE_FILE) is None  # released: the next attempt starts at once
    StoreLease(store, "r", seconds=1.0).acquire(wait=0, heartbeat=False).release()


def test_a_dead_holder_is_taken_over_and_can_no_longer_write(store):
    dead = StoreLease(store, "r", seconds=0.4).acquire(heartbeat=False)  # never renews: its node died
    successor = StoreLease(store, "r", seconds=0.4).acquire(wait=2.0, heartbeat=False)
    assert json.loads(store.read_text("r", LEASE_FILE))["token"] == successor.token
    with pytest.raises(LeaseLostError, match="taken over by pid"):
        dead.check()
    dead.release()  # a successor's lease is left alone
    assert json.loads(store.read_text("r", LEASE_FILE))["token"] == successor.token


def test_a_lease_left_long_ago_is_taken_without_waiting(store):
    store.write_text("r", LEASE_FILE, json.dumps({"token": "old", "holder": {}, "renewed_at": time.time() - 3600}))
    lease = StoreLease(store, "r", seconds=60).acquire(wait=0, heartbeat=False)
    assert json.loads(store.read_text("r", LEASE_FILE))["token"] == lease.token


def test_of_attempts_claiming_together_exactly_one_holds_the_run(store, monkeypatch):
    # Three attempts all see the lease free, then write their claims 50 ms apart (within the 0.25 s settle time of
    # a 2 s lease): only the last writer reads its own claim back; the others see a fresh lease and give up.
    barrier, delays = threading.Barrier(3), {"a": 0.0, "b": 0.05, "c": 0.1}
    claim = StoreLease._claim

    def together(self: StoreLease) -> bool:
        if not getattr(self, "claimed_once", False):
            self.claimed_once = True
            barrier.wait(timeout=10)
            time.sleep(delays[threading.current_thread().name])
        return claim(self)

    monkeypatch.setattr(StoreLease, "_claim", together)
    outcomes: dict[str, str] = {}

    def attempt(label: str) -> None:
        lease = StoreLease(store, "r", seconds=2.0)
        try:
            outcomes[label] = lease.acquire(wait=0.1, heartbeat=False).token
        except LeaseHeldError:
            outcomes[label] = "refused"

    threads = [threading.Thread(target=attempt, args=(label,), name=label) for label in delays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [label for label, token in outcomes.items() if token != "refused"]
    assert winners == ["c"], outcomes
    assert json.loads(store.read_text("r", LEASE_FILE))["token"] == outcomes["c"]


# ---------------------------------------------------------------------------------------------------- devices
@pytest.mark.parametrize("spec, gpu_ids, cuda, expected", [
    ("auto", None, True, "auto"),  # outside Ray: the config decides
    ("auto", ["0"], True, "cuda"),  # the GPU Ray assigned (CUDA_VISIBLE_DEVICES makes it cuda:0)
    ("cuda:3", ["1"], True, "cuda"),  # a machine-wide index means nothing once Ray picked the GPU
    ("auto", ["0"], False, "cpu"),  # a declared GPU without CUDA (simulated node): CPU
    ("cuda", ["0"], False, "cpu"),
    ("auto", [], True, "cpu"),  # Ray gave no GPU: do not take one it gave another task
    ("cpu", ["0"], True, "cpu"),
])
def test_task_device(spec, gpu_ids, cuda, expected):
    assert task_device(spec, gpu_ids, cuda) == expected


def test_cuda_without_a_reserved_gpu_is_refused():
    with pytest.raises(ConfigError, match="--gpus-per-run 1"):
        task_device("cuda", [], True)


def test_the_trainer_takes_the_task_device_without_changing_the_config(tmp_path):
    import yaml

    from robustft.training.trainer import train

    config = {**stored_config(), "output_dir": str(tmp_path), "device": "cuda", "train": {"steps": 1, "epochs": None},
              "eval": {"schedule": "every:1", "subset": 16, "batch_size": 16, "splits": ["test"], "eps": [],
                       "final": None, "ood": False}}
    run = train(from_dict(config), device="cpu")  # device=cuda alone fails on a machine without CUDA
    assert yaml.safe_load((run.path / "config.yaml").read_text())["device"] == "cuda"  # resumable elsewhere as is
    assert json.loads((run.path / "env.json").read_text())["device"] == "cpu"  # where it did train


def test_a_gpu_share_ray_cannot_give_is_refused_before_ray_starts():
    from robustft.sweep.ray_executor import check_resources

    check_resources(1, 0.5, 3)
    check_resources(1, 2, 0)
    with pytest.raises(ConfigError, match="1.5"):
        check_resources(1, 1.5, 3)
    with pytest.raises(ConfigError, match="must be 0 or more"):
        check_resources(1, 1, -1)


def test_storage_needs_the_ray_executor(tmp_path):
    from robustft.sweep import run_points

    with pytest.raises(ConfigError, match="--executor ray"):
        run_points([], [], tmp_path / "out", storage=(tmp_path / "s").as_uri())


# ---------------------------------------------------------------------------------------------------- a run
def stored_config(name: str = "r") -> dict:
    return {"name": name, "output_dir": "/nonexistent/replaced-by-the-working-directory", "seed": 0, "device": "cpu",
            "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
            "data": {"name": "digits", "image_size": 16, "limit_train": 64, "limit_val": 16, "limit_test": 32},
            "optim": {"batch_size": 32, "lr": 3.0e-3}, "train": {"steps": 30, "epochs": None},
            "eval": {"schedule": "every:10", "subset": 32, "batch_size": 32, "splits": ["test"], "eps": ["1/255"],
                     "final": None, "ood": False},
            "checkpoint": {"every_eval": True}, "logging": {"progress": False}}


def key(record: dict) -> tuple:
    return record["step"], record["split"], record["metric"], record["attack"], record["eps"]


def test_a_run_whose_attempt_died_resumes_from_the_store_without_duplicates(store, tmp_path, monkeypatch):
    from robustft.sweep.store_run import run_point_stored

    storage = {"uri": store.uri, "lease_seconds": 0.5, "local_dir": str(tmp_path / "node")}
    (tmp_path / "node").mkdir()
    pushed: list[list[str]] = []
    push = RunSync.push
    monkeypatch.setattr(RunSync, "push", lambda self: pushed.append(push(self)) or pushed[-1])
    first = run_point_stored(stored_config(), storage)
    assert (first.status, first.action) == ("finished", "start")
    # synced at every evaluation (steps 0, 10, 20, 30: a new last.pt each time), then the summary
    assert [("checkpoints/last.pt" in sent, "summary.json" in sent) for sent in pushed] == \
        [(True, False)] * 4 + [(False, True)]
    reference = [json.loads(line) for line in store.read_text("r", "metrics.jsonl").splitlines()]
    assert list(tmp_path.joinpath("node").iterdir()) == []  # the working directory is gone

    # The attempt "died" after uploading step 20's and 30's records but before a last.pt newer than step 10, and
    # left its lease behind (its node stopped renewing it).
    store.remove("r", "summary.json")
    store.get("r", "checkpoints/step_00000010.pt", tmp_path / "step10.pt")
    store.put(tmp_path / "step10.pt", "r", "checkpoints/last.pt")
    store.write_text("r", LEASE_FILE, json.dumps({"token": "dead", "holder": {"pid": 1}, "renewed_at": time.time()}))

    again = run_point_stored(stored_config(), storage)
    assert (again.status, again.action) == ("finished", "resume")
    records = [json.loads(line) for line in store.read_text("r", "metrics.jsonl").splitlines()]
    assert len({key(r) for r in records}) == len(records)  # no duplicated record
    # the same records, and values, as the uninterrupted attempt's (CPU training resumes exactly)
    assert [(key(r), r["value"]) for r in records] == [(key(r), r["value"]) for r in reference]
    attempts = read_attempts(store, "r")
    assert [(a["action"], a["start_step"]) for a in attempts] == [("start", 0), ("resume", 10)]
    assert store.read_text("r", LEASE_FILE) is None  # released
    assert run_point_stored(stored_config(), storage).status == "skipped"


def test_files_of_an_attempt_that_died_before_its_first_checkpoint_are_moved_aside(store, tmp_path):
    from robustft.sweep.store_run import run_point_stored

    store.write_text("r", "config.yaml", "name: r\n")
    store.write_text("r", "metrics.jsonl", '{"step": 0}\n')
    config = {**stored_config(), "train": {"steps": 10, "epochs": None}}
    result = run_point_stored(config, {"uri": store.uri, "lease_seconds": 0.5})
    assert (result.status, result.action) == ("finished", "restart")
    aside = [p.name for p in (tmp_path / "store").iterdir() if p.name.startswith("r.incomplete-")]
    assert len(aside) == 1 and store.read_text(aside[0], "metrics.jsonl") == '{"step": 0}\n'  # kept, not deleted
    assert [json.loads(line)["step"] for line in store.read_text("r", "metrics.jsonl").splitlines()][0] == 0


def test_a_run_another_live_attempt_trains_is_left_to_it(store):
    from robustft.sweep.store_run import run_point_stored

    with StoreLease(store, "r", seconds=0.5, holder={"node_id": "elsewhere"}).acquire():
        result = run_point_stored(stored_config(), {"uri": store.uri, "lease_seconds": 0.5})
    assert (result.status, result.action) == ("running", "running")
    assert result.extra["holder"]["node_id"] == "elsewhere"
    assert store.files("r") == []  # it wrote nothing


def test_a_cancelled_point_counts_as_interrupted_once_an_attempt_began(store):
    from robustft.runs.remote_store import record_attempt
    from robustft.sweep.grid import SweepPoint
    from robustft.sweep.ray_executor import _touched

    storage = {"uri": store.uri}
    since = time.time()
    assert not _touched(SweepPoint("r", ()), Path("unused"), since, storage)
    record_attempt(store, "r", {"started_at": since - 3600})  # an attempt of an earlier sweep
    assert not _touched(SweepPoint("r", ()), Path("unused"), since, storage)
    record_attempt(store, "r", {"started_at": time.time()})
    assert _touched(SweepPoint("r", ()), Path("unused"), since, storage)


def test_a_store_that_cannot_be_written_fails_the_point_and_says_why(tmp_path):
    from robustft.sweep.store_run import run_point_stored

    (tmp_path / "blocked").write_text("a file where the store's folder should be")
    result = run_point_stored(stored_config(), {"uri": (tmp_path / "blocked").as_uri(), "lease_seconds": 0.5})
    assert result.status == "failed"
    assert "in the run store" in result.error and "credentials, bucket and network" in result.error
