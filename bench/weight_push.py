#!/usr/bin/env python3
"""R8 of the benchmark protocol (docs/benchmark-protocol.md): a full bf16 weight push
into a running server, three ways, each timed from the call to the answer and then checked by
the logprob of a fixed prompt moving:
  gpu   our CUDA-IPC descriptors: the server copies from this process's GPU tensors;
  host  a raw safetensors body from host memory (application/octet-stream);
  disk  update_weights_from_disk from a safetensors checkpoint this script wrote (write not timed).
Runs where the server runs (tools/dist/gpu-run.sh), with torch and transformers. Give the server
room for a second copy of the weights in this process, e.g. ROLLOUT_KV_MEMORY_FRACTION=0.3.

    tools/dist/gpu-run.sh python3 bench/weight_push.py [--repeat 3] [--ways gpu,host,disk]
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

import torch
from safetensors.torch import save as safetensors_bytes
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "reference"))
import make_pickles as mp  # noqa: E402  ipc_descriptor: our CUDA-IPC JSON for one tensor

PROMPT = [9707, 11, 1879]


def call(url, path, body=None, raw=None, query="", timeout=600):
    if raw is None and body is None:  # a GET (get_model_info, get_weight_version, ...)
        req = urllib.request.Request(url + path + query)
    else:
        data, ctype = (raw, "application/octet-stream") if raw is not None else (json.dumps(body).encode(), "application/json")
        req = urllib.request.Request(url + path + query, data=data, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def probe(url):
    out = call(url, "/generate", {"input_ids": PROMPT, "return_logprob": True,
                                   "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
    return out["meta_info"]["output_token_logprobs"][0][0], out["meta_info"]["weight_version"]


def buckets(named, limit=1 << 30):
    """Consecutive groups of tensors of at most `limit` bytes each (a larger tensor alone)."""
    out, cur, size = [], [], 0
    for n, t in named:
        b = t.numel() * t.element_size()
        if cur and size + b > limit:
            out.append(cur)
            cur, size = [], 0
        cur.append((n, t))
        size += b
    return out + ([cur] if cur else [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("ROLLOUT_URL", "http://localhost:9080"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ways", default="gpu,host,disk")
    a = ap.parse_args()
    path = call(a.url, "/get_model_info")["model_path"]
    cfg = AutoConfig.from_pretrained(path)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)  # the pusher's copy: random, then perturbed
    named = [(n, p.detach()) for n, p in model.named_parameters()]
    nbytes = sum(t.numel() * t.element_size() for _, t in named)
    print("RESULT " + json.dumps({"what": "push_setup", "model": path, "parameters": sum(t.numel() for _, t in named),
                                  "bytes": nbytes, "device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    before, _ = probe(a.url)
    failed = False
    for way in a.ways.split(","):
        times, moved = [], 0
        for r in range(a.repeat):
            with torch.no_grad():
                named[0][1].mul_(1.01)  # a new model each round: the logprob must move
            version = "push-%s-%d" % (way, r)
            if way == "disk":
                d = "/tmp/rollout-push-ckpt"
                model.save_pretrained(d)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            if way == "gpu":
                ans = call(a.url, "/update_weights_from_tensor", {"load_format": "cuda_ipc", "weight_version": version,
                                                                  "cuda_ipc_tensors": [mp.ipc_descriptor(n, t) for n, t in named]})
            elif way == "host":
                # host memory, made before the clock; in buckets under the server's body limit, as one
                # atomic session when there is more than one
                blobs = [safetensors_bytes({n: t.contiguous().cpu() for n, t in bucket}) for bucket in buckets(named)]
                t0 = time.perf_counter()
                if len(blobs) == 1:
                    ans = call(a.url, "/update_weights_from_tensor", raw=blobs[0], query="?weight_version=" + version)
                else:
                    call(a.url, "/begin_weight_update", {"update_id": version})
                    for seq, blob in enumerate(blobs):
                        call(a.url, "/update_weights_from_tensor", raw=blob,
                             query="?update_id=%s&bucket_seq=%d" % (version, seq))
                    ans = call(a.url, "/end_weight_update", {"update_id": version, "weight_version": version})
                del blobs
            else:
                ans = call(a.url, "/update_weights_from_disk", {"model_path": d, "weight_version": version})
            times.append(time.perf_counter() - t0)
            after, served = probe(a.url)
            if ans.get("success") and served == version and abs(after - before) > 1e-6:
                moved += 1
            before = after
        med = statistics.median(times)
        print("RESULT " + json.dumps({"what": "push", "way": way, "repeat": a.repeat, "median_s": round(med, 4),
                                      "min_s": round(min(times), 4), "gb_per_s": round(nbytes / med / 1e9, 2),
                                      "verified": moved}), flush=True)
        failed |= moved != a.repeat
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
