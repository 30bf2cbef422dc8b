#!/usr/bin/env python3
"""A Python trainer's torch.distributed against the server's weight-update groups (ADR 0019):
examples/python's WeightBroadcaster forms the group as SGLang's init_custom_process_group does
(a TCPStore this process hosts, keys under the group's name) over gloo, pushes
model.norm.weight twice with a refused push between them, and checks the read-back, the served
version, that a wrong name is a 400 that leaves the group in step, and that the group is gone
after close. Needs torch (any CPU build) and a running server.

    python3 tools/reference/weight_group_interop.py http://localhost:9080 ADMIN_KEY [STORE_PORT]
"""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
import torch  # noqa: E402
from rollout_client import RolloutClient, RolloutError, WeightBroadcaster  # noqa: E402

url, key = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 29731
client = RolloutClient(url, admin_api_key=key, timeout=120)
client.wait_ready(timeout=300)


def call(path, body=None):
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def norm():
    return call("/get_weights_by_name", {"name": "model.norm.weight", "truncate_size": 1 << 20})


ok = True
size = len(norm())
print("torch", torch.__version__, "| server model", call("/get_model_info")["model_path"], "| model.norm.weight of", size)
t0 = time.time()
with WeightBroadcaster(client, "127.0.0.1", port, group_name="interop", backend="gloo", timeout_s=60) as b:
    groups = call("/rl/state")["weight_update_groups"]
    print("formed in %.2f s:" % (time.time() - t0), groups)
    ok &= groups == [{"group_name": "interop", "rank": 1, "world_size": 2, "backend": "gloo"}]
    first = (torch.arange(size, dtype=torch.float32) / 100 + 0.25).to(torch.bfloat16)
    answer = b.push([("model.norm.weight", first)], weight_version="interop-1")
    same = norm() == first.float().tolist()
    print("push 1:", answer["weight_version"], "read back equal:", same)
    ok &= same and answer["weight_version"] == "interop-1"
    try:
        b.push([("model.nrom.weight", first)], weight_version="never")
        print("a wrong name was accepted")
        ok = False
    except RolloutError as e:
        print("a wrong name is refused, after its broadcast:", str(e)[-80:])
    second = (first.float() + 1).to(torch.bfloat16)
    answer = b.push([("model.norm.weight", second)], weight_version="interop-2")
    same = norm() == second.float().tolist()
    print("push 2, on the same group:", answer["weight_version"], "read back equal:", same)
    ok &= same and answer["weight_version"] == "interop-2"
left = call("/rl/state")["weight_update_groups"]
print("groups after close:", left)
ok &= left == []
print("WEIGHT GROUP INTEROP", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
