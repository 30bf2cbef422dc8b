#!/usr/bin/env python3
"""bf16 parity of the server on CUDA with transformers, on the same random weights (issue #4's
check: >=99% identical greedy tokens over the first 32 tokens of 8 prompts, logprob differences
<= 2e-2).

    python3 tools/gpu/parity.py make DIR [--layers 28]   # random Qwen3-0.6B-shaped checkpoint + reference
    ROLLOUT_MODEL_PATH=DIR tools/dist/gpu-run.sh python3 tools/gpu/parity.py check DIR

`make` writes the checkpoint with transformers' own initialisation (seeded) and, from
transformers in bf16 on the GPU, the greedy continuation of 8 prompts with each token's logprob.
`check` asks the server for the same continuations, free-running and teacher-forced (the
reference's tokens fed back as the prompt, so one bf16 near-tie does not hide the rest).
"""
import argparse
import json
import os
import sys
import urllib.request

import torch
from transformers import AutoModelForCausalLM, Qwen3Config

NEW_TOKENS, PROMPTS, TOLERANCE = 32, 8, 2e-2


def make(d, layers):
    torch.manual_seed(20261126)
    # Qwen3-0.6B's shape (hidden 1024, 16/8 heads of 128, intermediate 3072, tied embeddings)
    cfg = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers,
                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                      eos_token_id=151645, dtype="bfloat16")
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda().eval()
    model.save_pretrained(d)
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(1000, 150000, (int(n),), generator=g).tolist()
               for n in torch.randint(8, 96, (PROMPTS,), generator=g)]
    ref = greedy(model, prompts)
    # the noise floor: transformers against itself with its eager attention instead of SDPA
    eager = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").cuda().eval()
    floor = greedy(eager, prompts)
    with open(os.path.join(d, "parity-reference.json"), "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "device": torch.cuda.get_device_name(), "reference": ref, "eager": floor}, f)
    print("wrote", d, "with", sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")


def greedy(model, prompts):
    out_all = []
    for p in prompts:
        ids = torch.tensor([p], device="cuda")
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
        toks = out.sequences[0, len(p):].tolist()
        lps = [float(torch.log_softmax(l[0].float(), -1)[t]) for l, t in zip(out.logits, toks)]
        out_all.append({"prompt": p, "tokens": toks, "logprobs": lps})
    return out_all


def agreement(a, b):
    """(equal tokens, total, logprob diffs up to each first divergence) between two greedy runs."""
    same = total = 0
    diffs = []
    for x, y in zip(a, b):
        match = [s == t for s, t in zip(x["tokens"], y["tokens"])]
        same += sum(match)
        total += len(match)
        first = match.index(False) if False in match else len(match)
        diffs += [abs(s - t) for s, t in zip(x["logprobs"][:first], y["logprobs"][:first])]
    return same, total, diffs


def post(url, body):
    req = urllib.request.Request(url + "/generate", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def check(d, url):
    with open(os.path.join(d, "parity-reference.json")) as f:
        saved = json.load(f)
    ref = saved["reference"]
    same, total, diffs = agreement(ref, saved["eager"])
    print("noise floor, transformers SDPA vs transformers eager attention: %d/%d = %.2f%% greedy tokens equal, "
          "logprob |diff| before divergence max %.2e mean %.2e" % (same, total, 100 * same / total, max(diffs or [0]),
                                                                  sum(diffs) / max(1, len(diffs))))
    free = post(url, {"input_ids": [r["prompt"] for r in ref], "return_logprob": True,
                      "sampling_params": {"max_new_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": True}})
    # teacher-forced: the reference's own continuation as the prompt, its logprobs read back
    forced = post(url, {"input_ids": [r["prompt"] + r["tokens"] for r in ref], "return_logprob": True,
                        "logprob_start_len": [len(r["prompt"]) - 1 for r in ref],
                        "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
    same = total = 0
    free_diffs, forced_diffs = [], []
    for k, (r, f, t) in enumerate(zip(ref, free, forced)):
        got = f["output_ids"]
        match = [a == b for a, b in zip(got, r["tokens"])]
        same += sum(match)
        total += len(r["tokens"])
        first = match.index(False) if False in match else len(match)
        # free-running logprobs are comparable up to the first divergence
        free_diffs += [abs(a[0] - b) for a, b in zip(f["meta_info"]["output_token_logprobs"][:first], r["logprobs"][:first])]
        # input_token_logprobs from logprob_start_len = len(prompt)-1: entry j+1 scores the reference's token j
        tf = t["meta_info"]["input_token_logprobs"][1:]
        forced_diffs += [abs(a[0] - b) for a, b in zip(tf, r["logprobs"])]
        print("prompt %d (%d tokens): %d/%d greedy tokens equal, first divergence at %s" % (
            k, len(r["prompt"]), sum(match), len(match), first if first < len(match) else "-"))
    frac = same / total
    print("greedy tokens identical: %d/%d = %.2f%% (target >= 99%%)" % (same, total, 100 * frac))
    print("logprob |diff| free-running (before divergence): max %.2e mean %.2e over %d tokens" % (
        max(free_diffs or [0]), sum(free_diffs) / max(1, len(free_diffs)), len(free_diffs)))
    print("logprob |diff| teacher-forced: max %.2e mean %.2e over %d tokens (target <= %.0e)" % (
        max(forced_diffs), sum(forced_diffs) / len(forced_diffs), len(forced_diffs), TOLERANCE))
    ok = frac >= 0.99 and max(forced_diffs) <= TOLERANCE and max(free_diffs or [0]) <= TOLERANCE
    print("GPU PARITY", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "check"])
    ap.add_argument("dir")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--url", default=os.environ.get("ROLLOUT_URL", "http://localhost:9080"))
    a = ap.parse_args()
    sys.exit(make(a.dir, a.layers) if a.what == "make" else check(a.dir, a.url))
