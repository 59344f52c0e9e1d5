"""Run by test_batch_multinode.py in its own process: a 3-node Ray cluster on this machine (a head
without GPUs and two nodes with one fake GPU each), a batch of two clips, and the node running the
longest clip removed without grace, its worker process killed with it, after its third frame. Prints a
JSON report on the last line.

    python tests/farm/multinode_run.py CLIPS_JSON OUT_DIR CHECKPOINT SMPLX
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def main(clips_json: str, out_dir: str, checkpoint: str, smplx: str) -> None:
    from backend.farm.cluster import LOCAL_ENV

    os.environ.update(LOCAL_ENV)  # loopback only, no token file: before ray is imported
    from ray.cluster_utils import Cluster

    from backend.farm.driver import BatchSettings, run_batch
    from backend.farm.inputs import ClipInput
    from tests.farm.clips import TINY_OPTIONS

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    nodes = {}
    for _ in range(2):
        node = cluster.add_node(num_cpus=1, num_gpus=1)
        nodes[node.node_id] = node
    cluster.wait_for_nodes()
    clips = json.loads(clips_json)
    target = max(clips, key=lambda n: clips[n][1])
    killed: dict = {}
    events = []

    def on_event(event, state, payload):
        events.append({"event": event, "clip": state.clip.name, "node": payload.get("node_id"),
                       "frames": payload.get("frames")})
        if event == "progress" and state.clip.name == target and not killed and payload["frames"] >= 3:
            killed["node"] = payload["node_id"]
            # a node that loses power loses its worker processes at the same instant; removing the raylet
            # alone left the worker computing until it noticed, and on a loaded machine it finished the clip
            os.kill(payload["pid"], signal.SIGKILL)
            cluster.remove_node(nodes[payload["node_id"]], allow_graceful=False)

    model = {"checkpoint": checkpoint, "smplx": smplx, "device": "cpu", "precision": "fp32", "threads": 1}
    report = run_batch([ClipInput(Path(path), name) for name, (path, _n) in clips.items()], Path(out_dir),
                       dict(TINY_OPTIONS), BatchSettings(model=model, address=cluster.address, quiet=True),
                       on_event)
    import ray

    ray.shutdown()
    cluster.shutdown()
    print(json.dumps({"target": target, "killed": killed.get("node"), "events": events,
                      "clips": [c.summary(Path(out_dir)) for c in report.clips]}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
