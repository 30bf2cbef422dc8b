#!/usr/bin/env python3
"""veRL's and slime's weight pushes, replayed on the GPU against the distribution's server, in the
order of their call-path ITs (VerlCallPathsIT.hybridWeightSyncStep,
SlimeCallPathsIT.colocatedOffloadSyncOnload), with the real pickles in place of the disk loads
that the CPU ITs use. Issue #17; the request shapes are in docs/api.md ("RL frameworks").

    python3 tools/gpu/framework_pushes.py make DIR
    ROLLOUT_MODEL_PATH=DIR/a tools/dist/gpu-run.sh python3 tools/gpu/framework_pushes.py check DIR

`make` saves checkpoint A with transformers: Qwen3-0.6B's shape cut to 4 layers, tied embeddings,
bf16. `check` builds two other models of that config on the GPU (seeds 1 and 2) and pushes them
whole from this process, as the trainer's process would:
  veRL   model B's state_dict() (lm_head.weight included, as FSDP gives it for a tied model), as
         ForkingPickler pickles of LocalSerializedTensor(values=[IPC pickle]) with the GPU named by
         UUID, in buckets (veRL's get_named_tensor_buckets; 64 MB here, so that there are several),
         flush_cache true, no weight_version; between release {kv_cache, weights} + resume
         {weights} and GET /flush_cache + resume {kv_cache}.
  slime  model C's parameters as flattened uint8 buckets (FlattenedTensorBucket with byte
         offsets), load_format "flattened_bucket", flush_cache false, weight_version "2"; between
         release {} + resume {weights} + pause + flush and continue + resume {kv_cache, cuda_graph}.
  groups model D (seed 3) by broadcast, slime's and AReaL's distributed path, with this process's
         torch.distributed as the trainer's rank 0 (examples/python's WeightBroadcaster, formed as
         SGLang's init_custom_process_group forms it) and the server as rank 1: pause, flush,
         init_weights_update_group, update_weights_from_distributed per 64 MB bucket (the last one
         with weight_version "3"), continue, destroy. gloo, on host tensors: NCCL refuses two
         ranks on one GPU, so this checks the rendezvous and the wire, not NCCL.
After each, every parameter is read back (/get_weights_by_name, the first two rows) and must equal
what was pushed bit for bit; the served version must be the pushed one; and the server's greedy
tokens are compared with transformers' on the same weights (reported: random weights have near-ties).
Exit code 0 when every read-back and version matches.
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
import make_pickles as mp  # SGLang's classes and its UUID-patched reducer  # noqa: E402
import torch  # noqa: E402
from rollout_client import RolloutClient, WeightBroadcaster  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config  # noqa: E402

BASE = os.environ.get("ROLLOUT_URL", "http://localhost:9080")
PROMPT = [9707, 11, 1879, 0, 4340, 525, 498, 30]
BUCKET_BYTES = 64 << 20


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            text = r.read().decode()
            # flush_cache answers text ("Cache flushed."), the rest JSON
            return r.status, json.loads(text) if text.strip().startswith(("{", "[")) else text
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ok(method, path, body=None):
    s, o = call(method, path, body)
    if s != 200:
        raise SystemExit("%s %s answered %s: %s" % (method, path, s, str(o)[:300]))
    return o


def poll_flush(tries, pause_s):
    """GET /flush_cache until 200, as veRL (12 x 2 s) and slime (60 x 1 s) do."""
    for _ in range(tries):
        if call("GET", "/flush_cache")[0] == 200:
            return
        time.sleep(pause_s)
    raise SystemExit("/flush_cache never answered 200")


def make(d):
    cfg = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=4,
                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                      eos_token_id=151645, dtype="bfloat16")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(os.path.join(d, "a"))
    print("saved", os.path.join(d, "a"))


def model(d, seed):
    torch.manual_seed(seed)
    cfg = AutoConfig.from_pretrained(os.path.join(d, "a"))
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda().eval()


def b64(blob):
    return base64.b64encode(blob).decode()


def buckets(named, limit):
    """veRL's get_named_tensor_buckets: consecutive (name, tensor) pairs up to `limit` bytes each."""
    out, cur, size = [], [], 0
    for name, t in named:
        n = t.numel() * t.element_size()
        if cur and size + n > limit:
            out.append(cur)
            cur, size = [], 0
        cur.append((name, t))
        size += n
    return out + ([cur] if cur else [])


def verl_push(m):
    """V2: one POST per bucket; only IPC handles travel. Returns the tensors, which must outlive the calls."""
    state = m.state_dict()
    print("verl: state_dict() holds lm_head.weight:", "lm_head.weight" in state, "(the server skips a tied one)")
    named = [(n, t.detach().contiguous()) for n, t in state.items()]
    parts = buckets(named, BUCKET_BYTES)
    t0 = time.time()
    for part in parts:
        blob = mp.serialize([(n, mp.LocalSerializedTensor(values=[mp.serialize(t, patched=True)])) for n, t in part],
                            patched=True)
        ok("POST", "/update_weights_from_tensor", {"serialized_named_tensors": [b64(blob)], "load_format": None,
                                                   "flush_cache": True})
    print("verl: %d buckets, %d tensors, %.2f s" % (len(parts), len(named), time.time() - t0))
    return named


def slime_push(m, version):
    """S13: each chunk one uint8 tensor with byte offsets, the metadata beside it."""
    named = [(n, p.detach().contiguous()) for n, p in m.named_parameters()]
    keep = []
    t0 = time.time()
    for part in buckets(named, BUCKET_BYTES):
        flat_parts = [t.view(-1).view(torch.uint8) for _, t in part]
        flat = torch.cat(flat_parts)
        meta, start = [], 0
        for (n, t), fp in zip(part, flat_parts):
            meta.append(mp.FlattenedTensorMetadata(n, t.shape, t.dtype, start, start + fp.numel(), t.numel()))
            start += fp.numel()
        keep.append(flat)
        blob = mp.serialize({"flattened_tensor": flat, "metadata": meta}, patched=True)
        ok("POST", "/update_weights_from_tensor", {"serialized_named_tensors": [b64(blob)],
                                                   "load_format": "flattened_bucket", "flush_cache": False,
                                                   "weight_version": version})
    print("slime: %d buckets, %d tensors, %.2f s" % (len(keep), len(named), time.time() - t0))
    return named, keep


def read_back(named, who):
    """Every pushed parameter's first two rows, bit for bit (lm_head.weight is the tied embedding)."""
    bad = 0
    for n, t in named:
        rows = ok("POST", "/get_weights_by_name", {"name": n, "truncate_size": 2})
        got = torch.tensor(rows, dtype=torch.float32)
        want = t[:2].float().cpu()
        if got.shape != want.shape or not torch.equal(got, want):
            bad += 1
            print("%s: %s differs: %s vs %s" % (who, n, got.flatten()[:4].tolist(), want.flatten()[:4].tolist()))
    print("%s: %d of %d parameters read back equal" % (who, len(named) - bad, len(named)))
    return bad == 0


def greedy(m, who):
    o = ok("POST", "/generate", {"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 16, "temperature": 0}})
    with torch.no_grad():
        ref = m.generate(torch.tensor([PROMPT], device="cuda"), max_new_tokens=16, do_sample=False)[0, len(PROMPT):]
    same = sum(int(a == b) for a, b in zip(o["output_ids"], ref.tolist()))
    print("%s: served %s, transformers %s, %d of 16 greedy tokens equal" % (who, o["output_ids"], ref.tolist(), same))
    return o["meta_info"]["weight_version"]


def verl_phase(d):
    """veRL, the hybrid step."""
    before = ok("GET", "/get_weight_version")["weight_version"]
    b = model(d, 1)
    ok("POST", "/release_memory_occupation", {"tags": ["kv_cache", "weights"]})
    ok("POST", "/resume_memory_occupation", {"tags": ["weights"]})
    named = verl_push(b)
    poll_flush(12, 2)
    ok("POST", "/resume_memory_occupation", {"tags": ["kv_cache"]})
    good = read_back([(n, t) for n, t in named if n != "lm_head.weight"], "verl")
    v = greedy(b, "verl")
    print("verl: served version %r, before %r (veRL sends none, so it stays, as in SGLang)" % (v, before))
    return good and v == before


def slime_phase(d):
    """slime, the colocated step."""
    c = model(d, 2)
    poll_flush(60, 1)
    ok("POST", "/release_memory_occupation", {})
    ok("POST", "/resume_memory_occupation", {"tags": ["weights"]})
    ok("POST", "/pause_generation", {})
    poll_flush(60, 1)
    named, keep = slime_push(c, "2")
    ok("POST", "/continue_generation", {})
    ok("POST", "/resume_memory_occupation", {"tags": ["kv_cache", "cuda_graph"]})
    good = read_back(named, "slime")
    v = greedy(c, "slime")
    print("slime: served version %r (pushed \"2\")" % v)
    return good and v == "2"


def groups_phase(d):
    """slime's and AReaL's broadcast path, over gloo."""
    m = model(d, 3)
    named = [(n, p.detach().cpu().contiguous()) for n, p in m.named_parameters()]
    ok("POST", "/pause_generation", {})
    poll_flush(60, 1)
    t0 = time.time()
    client = RolloutClient(BASE, timeout=300)
    with WeightBroadcaster(client, "127.0.0.1", 29613, group_name="slime-pp_0", backend="gloo", timeout_s=120) as b:
        print("groups: formed in %.2f s: %s" % (time.time() - t0, ok("GET", "/rl/state")["weight_update_groups"]))
        parts = buckets(named, BUCKET_BYTES)
        t1 = time.time()
        for i, part in enumerate(parts):
            answer = b.push(part, weight_version="3" if i == len(parts) - 1 else None)
        print("groups: %d calls, %d tensors, %.2f s; last answer %s" % (len(parts), len(named), time.time() - t1, answer))
    ok("POST", "/continue_generation", {})
    good = read_back(named, "groups")
    v = greedy(m, "groups")
    print("groups: served version %r (pushed \"3\")" % v)
    return good and v == "3" and ok("GET", "/rl/state")["weight_update_groups"] == []


def check(d):
    good = True
    for phase in (verl_phase, slime_phase, groups_phase):
        # whatever a failed phase left behind (paused, memory released): serving again, best effort
        call("POST", "/continue_generation", {})
        call("POST", "/resume_memory_occupation", {})
        try:
            passed = phase(d)
        except BaseException as e:  # one phase's failure must not hide the others'
            print("%s: FAILED with %r" % (phase.__name__, e))
            passed = False
        print("%s: %s" % (phase.__name__, "passed" if passed else "FAILED"))
        good &= passed
        torch.cuda.empty_cache()
    print("FRAMEWORK PUSHES", "PASSED" if good else "FAILED")
    return 0 if good else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2]))
