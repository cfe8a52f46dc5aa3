"""A sweep on a simulated 3-node Ray cluster with declared GPUs, its runs in one fsspec store, one node killed
mid-run: every run completes in the store, the killed one resumed on the other node from its checkpoint there."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from test_run_store import key

GRID = {"optim.lr": ["1e-3", "3e-3", "1e-2"]}
# Long enough (300 steps, a checkpoint every 50) that a run is still training when its node is removed.
CONFIG = """
name: cluster
output_dir: {out}
seed: 0
device: auto
model: {{name: tiny-cnn, pretrained: false, image_size: 16}}
data: {{name: digits, image_size: 16, limit_train: 128, limit_val: 32, limit_test: 64}}
strategy: {{name: full}}
objective: {{name: standard}}
eps: {{schedule: zero}}
optim: {{batch_size: 32, lr: 3.0e-3}}
train: {{steps: 300}}
eval: {{schedule: every:50, subset: 32, batch_size: 64, splits: [test], eps: [1/255], final: null, ood: false}}
logging: {{progress: false}}
"""
MB = 1024 * 1024


def checkpoint_step(store, name: str, scratch: Path) -> int | None:
    """The step of ``name``'s last.pt in the store (None: none yet)."""
    import torch

    if not store.get(name, "checkpoints/last.pt", scratch):
        return None
    return int(torch.load(scratch, map_location="cpu", weights_only=True)["step"])


def kill_a_node_mid_run(cluster, store, names: list[str], scratch: Path, seen: dict) -> None:
    """Waits for a run with a checkpoint past step 0 in the store and no summary, then removes its node."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for name in names:
            step = checkpoint_step(store, name, scratch)
            lease = store.read_text(name, "lease.json")
            if step and lease and not store.finished(name):
                node_id = json.loads(lease)["holder"]["node_id"]
                node = next(n for n in cluster.list_all_nodes() if n.node_id == node_id)
                if node is cluster.head_node:  # runs need a GPU and the head declares none: never expected
                    seen["error"] = f"{name} runs on the head node"
                    return
                cluster.remove_node(node)
                seen.update(name=name, step=step, node_id=node_id)
                return
        time.sleep(0.2)
    seen["error"] = "no run was seen mid-run with a checkpoint in the store"


@pytest.mark.slow
def test_a_sweep_survives_a_node_dying_mid_run(tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray is in the dev extra; install it with pip install 'robustft[ray]'")
    from ray.cluster_utils import Cluster

    from robustft.cli import main
    from robustft.runs.remote_store import RunStore, read_attempts
    from robustft.sweep import STATUS_FINISHED, resolve_points, run_sweep

    config = tmp_path / "cluster.yaml"
    config.write_text(CONFIG.format(out=tmp_path / "runs"))
    store = RunStore((tmp_path / "store").as_uri())  # file://, read and written only through fsspec
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0,
                                                           "object_store_memory": 80 * MB})
    cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=80 * MB)
    cluster.add_node(num_cpus=1, num_gpus=2, object_store_memory=80 * MB)
    cluster.wait_for_nodes()
    names = [p.name for p in resolve_points(config, GRID, output_dir=tmp_path / "sweep")[0]]
    seen: dict = {}
    killer = threading.Thread(target=kill_a_node_mid_run,
                              args=(cluster, store, names, tmp_path / "last.pt", seen), daemon=True)
    killer.start()
    try:
        # Two runs per node (half a CPU and half a GPU each); a lease lapses after 2 s without renewal.
        results = run_sweep(config, GRID, output_dir=tmp_path / "sweep", executor="ray", ray_address=cluster.address,
                            cpus_per_run=0.5, gpus_per_run=0.5, storage=store.uri, lease_seconds=2.0)
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert "error" not in seen and "name" in seen, seen

    assert [r.status for r in results] == [STATUS_FINISHED] * 3, results
    records = {}
    for name in names:
        assert store.finished(name), name  # every run complete in the store
        lines = store.read_text(name, "metrics.jsonl").splitlines()
        records[name] = [json.loads(line) for line in lines]
        assert len({key(r) for r in records[name]}) == len(records[name]), f"{name}: duplicated record"
        for attempt in read_attempts(store, name):  # the share of a GPU each task asked for, on CPU here
            assert attempt["resources"] == {"CPU": 0.5, "GPU": 0.5}, attempt
            assert attempt["gpu_ids"] and attempt["device"] == "cpu", attempt
    # no gap: the killed run has every record the others have (same schedule, same evaluations)
    reference = {key(r) for r in records[next(n for n in names if n != seen["name"])]}
    assert {key(r) for r in records[seen["name"]]} == reference
    assert {r["step"] for r in records[seen["name"]]} == set(range(0, 301, 50))

    # the killed run resumed on the other node from its checkpoint in the store, not from step 0
    attempts = read_attempts(store, seen["name"])
    assert [a["action"] for a in attempts] == ["start", "resume"], attempts
    assert attempts[0]["node_id"] == seen["node_id"] != attempts[1]["node_id"]
    assert seen["step"] <= attempts[1]["start_step"] < 300
    assert store.read_text(seen["name"], "lease.json") is None

    # one report over the store (a file:// store is a directory robustft report reads), and the sweep's copy
    assert main(["report", str(tmp_path / "store"), "--output-dir", str(tmp_path / "report"), "--group-by",
                 "strategy"]) == 0
    assert "(3 run(s))" in capsys.readouterr().out
    assert all((tmp_path / "sweep" / name / "summary.json").is_file() for name in names)
    assert all(r.path == str(tmp_path / "sweep" / r.name) and r.extra["store"] == store.run_uri(r.name)
               for r in results)
