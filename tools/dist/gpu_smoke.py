#!/usr/bin/env python3
"""On the GPU machine, against a running distribution (tools/dist/start.sh with
ROLLOUT_ALLOW_PICKLE=true): generates, then pushes model.norm.weight as SGLang's
HttpServerEngineAdapter does (torch's ForkingPickler, CUDA IPC, GPU named by UUID) and as veRL
does (LocalSerializedTensor), and checks that the server serves what was pushed.
    python3 tools/dist/gpu_smoke.py http://localhost:9080
"""
import base64
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import make_pickles as mp  # re-creates SGLang's classes and its patched reducer  # noqa: E402
import torch  # noqa: E402

base = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:9080"


def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def generate():
    s, o = call("/generate", {"input_ids": [9707, 11, 1879], "return_logprob": True,
                              "sampling_params": {"max_new_tokens": 8, "temperature": 0}})
    assert s == 200, (s, o)
    return o


t0 = time.time()
first = generate()
print("generate on the GPU server:", first["output_ids"], first["meta_info"]["weight_version"], "%.3f s" % (time.time() - t0))
info = call("/get_server_info")[1]
print("device", info["device"], "dtype", info["dtype"])

ok = True
for k, kind in enumerate(["sglang", "verl"]):
    norm = (torch.arange(128, device="cuda", dtype=torch.bfloat16) / 128 + 0.5 + k).contiguous()
    if kind == "sglang":
        blob = mp.serialize([("model.norm.weight", norm)], patched=True)
    else:
        inner = mp.serialize(norm, patched=True)
        blob = mp.serialize([("model.norm.weight", mp.LocalSerializedTensor(values=[inner]))], patched=True)
    version = "gpu-%s" % kind
    t1 = time.time()
    s, o = call("/update_weights_from_tensor", {"serialized_named_tensors": [base64.b64encode(blob).decode()],
                                                 "load_format": None, "flush_cache": True, "weight_version": version})
    print(kind, "push:", s, o, "%.3f s" % (time.time() - t1))
    back = call("/get_weights_by_name", {"name": "model.norm.weight", "truncate_size": 4})[1]
    want = norm.float()[:4].tolist()
    served = generate()
    good = s == 200 and all(abs(a - b) < 1e-6 for a, b in zip(back, want)) and served["meta_info"]["weight_version"] == version
    print(kind, "read back", back, "expected", want, "served version", served["meta_info"]["weight_version"],
          "tokens", served["output_ids"], "OK" if good else "MISMATCH")
    ok &= good
    del norm
s, o = call("/update_weights_from_tensor", {"serialized_named_tensors": [mp.base64.b64encode(
    mp.pickle.dumps(mp.os.system)).decode()]})
print("exploit:", s, str(o)[:160])
ok &= s == 400
print("GPU SMOKE", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
