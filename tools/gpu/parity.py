#!/usr/bin/env python3
"""bf16 parity of the server on CUDA with transformers, on the same weights (issue #4's check:
>=99% identical greedy tokens over the first 32 tokens of 8 prompts, logprob differences <= 2e-2).

    python3 tools/gpu/parity.py make DIR [--arch qwen3|qwen3-moe] [--layers 28] [--train-s 150]
    ROLLOUT_MODEL_PATH=DIR/flat tools/dist/gpu-run.sh python3 tools/gpu/parity.py check DIR
    ROLLOUT_MODEL_PATH=DIR/flat ROLLOUT_FP32_LM_HEAD=true tools/dist/gpu-run.sh \
        python3 tools/gpu/parity.py check DIR --logits fp32

With `--arch qwen3-moe` the checkpoints have Qwen3-30B-A3B's shape but for the number of layers
(hidden 2048, 32/4 heads of 128, 128 experts of 768, 8 routed per token; issue #19), the reference
records each teacher-forced position's routed experts (the top 8 of transformers' router logits),
and `check` reports how many the server's `return_routed_experts` agree with (the server needs
`ROLLOUT_ENABLE_RETURN_ROUTED_EXPERTS=true`).

`make` writes two checkpoints of Qwen3-0.6B's shape, both from transformers' own seeded
initialisation, each with transformers' greedy continuations (bf16, SDPA) and its eager-attention
floor:
  DIR/flat     the initialisation itself. Its logits are nearly flat (a 152k vocabulary of random
               directions), so many greedy steps are near-ties that bf16 rounding decides:
               transformers parts from itself on ~15% of tokens when only its attention changes.
               Reported, not judged.
  DIR/trained  the same initialisation trained for a minute or two on a Markov chain over 1,024
               tokens, each followed by its own successor 90% of the time, so that the greedy
               choices have margins, as a trained model's do. The check is judged on this one.
`check` asks the server for the same continuations, free-running and teacher-forced (the
reference's tokens fed back as the prompt, so one near-tie does not hide the rest), switching
checkpoints with `update_weights_from_disk`. Exit code 0 when the trained checkpoint passes.
"""
import argparse
import contextlib
import json
import os
import sys
import time
import urllib.request

import torch
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3MoeConfig

NEW_TOKENS, PROMPTS, TOLERANCE = 32, 8, 2e-2
CHECKPOINTS = ("flat", "trained")
LOW, HIGH = 1000, 150000  # token ids of the prompts and the training language


def config(layers, arch="qwen3"):
    if arch == "qwen3-moe":
        # Qwen3-30B-A3B's shape per layer: hidden 2048, 32/4 heads of 128, 128 experts of 768, top 8
        return Qwen3MoeConfig(vocab_size=151936, hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
                              num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1,
                              mlp_only_layers=[], num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=4,
                              head_dim=128, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                              tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645, dtype="bfloat16")
    # Qwen3-0.6B's shape (hidden 1024, 16/8 heads of 128, intermediate 3072, tied embeddings)
    return Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                       eos_token_id=151645, dtype="bfloat16")


def chain(seed):
    """The training language: 1,024 token ids, each with a successor that follows it 90% of the
    time (else any of the 1,024). Returns (ids, successor of each id's index)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(HIGH - LOW, generator=g)[:1024] + LOW
    return ids, torch.randint(0, 1024, (1024,), generator=g)


def walk(g, succ, length, device="cpu"):
    """Indices into the chain's ids: a walk of `length` steps, (length,)."""
    n = len(succ)
    follow = torch.rand(length, generator=g, device=device) < 0.9
    jump = torch.randint(0, n, (length,), generator=g, device=device)
    out = [int(jump[0])]
    succ = succ.tolist()
    for t in range(1, length):
        out.append(succ[out[-1]] if follow[t] else int(jump[t]))
    return out


def make(d, layers, train_s, arch="qwen3"):
    torch.manual_seed(20261126)
    model = AutoModelForCausalLM.from_config(config(layers, arch), dtype=torch.float32).cuda()
    g = torch.Generator().manual_seed(7)
    flat_prompts = [torch.randint(LOW, HIGH, (int(n),), generator=g).tolist() for n in torch.randint(8, 96, (PROMPTS,), generator=g)]
    ids, succ = chain(3)
    chain_prompts = [ids[walk(g, succ, int(n))].tolist() for n in torch.randint(8, 96, (PROMPTS,), generator=g)]
    save_with_reference(model, os.path.join(d, "flat"), flat_prompts, {})
    info = train(model, ids, succ, train_s)
    save_with_reference(model, os.path.join(d, "trained"), chain_prompts, info)


def train(model, ids, succ, seconds, batch=16, length=256):
    """Next-token training on walks of the chain until the argmax is every position's successor
    (99.9% of them, 20 steps running) or the time runs out. float32 weights, bf16 autocast, AdamW."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.0)
    g = torch.Generator().manual_seed(11)
    ids_cuda, succ_cuda = ids.cuda(), succ.cuda()
    t0, step, good, acc, loss = time.time(), 0, 0, 0.0, float("nan")
    while time.time() - t0 < seconds and good < 20:
        walks = torch.tensor([walk(g, succ, length) for _ in range(batch)], device="cuda")  # (B, L) chain indices
        x = ids_cuda[walks]  # (B, L) token ids
        for group in opt.param_groups:
            group["lr"] = 3e-4 * min(1.0, (step + 1) / 30)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=x, labels=x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            acc = float((out.logits[:, :-1].argmax(-1) == ids_cuda[succ_cuda[walks[:, :-1]]]).float().mean())
            loss = float(out.loss)
        good = good + 1 if acc >= 0.999 else 0
        if step % 25 == 0:
            print("train step %d: loss %.3f, successor accuracy %.4f, %.0f s" % (step, loss, acc, time.time() - t0), flush=True)
        step += 1
    del opt
    model.eval()
    info = {"steps": step, "seconds": round(time.time() - t0, 1), "loss": round(loss, 4), "successor_accuracy": acc}
    print("trained:", info, flush=True)
    return info


def save_with_reference(model, d, prompts, info):
    """Saves the model in bf16 with transformers' greedy continuations: with its bf16 logits and
    with float32 logits from the same bf16 GEMM (the server's rollout.fp32-lm-head), each beside
    the same run with eager attention instead of SDPA (transformers' own noise floor)."""
    bf16 = model.to(torch.bfloat16).eval()
    bf16.save_pretrained(d)
    eager = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").cuda().eval()
    ref, floor = {}, {}
    for logits in ("bf16", "fp32"):
        with fp32_logits(bf16, logits == "fp32"), fp32_logits(eager, logits == "fp32"):
            ref[logits], floor[logits] = greedy(bf16, prompts), greedy(eager, prompts)
        margins = sorted(m for r in ref[logits] for m in r["margins"])
        print("%s, %s logits: greedy margin (top-1 minus top-2 logit) min %.4f, median %.4f" % (d, logits, margins[0], margins[len(margins) // 2]))
    del eager
    routed = routed_experts(bf16, ref["bf16"]) if hasattr(bf16.config, "num_experts") else None
    with open(os.path.join(d, "parity-reference.json"), "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "device": torch.cuda.get_device_name(), "training": info, "reference": ref, "eager": floor,
                   "routed_experts": routed}, f)
    model.float()


@contextlib.contextmanager
def fp32_logits(model, on):
    """The LM head's bf16 GEMM with a float32 result: an untied float32 copy of its weight, fed the
    bf16 hidden state widened (exact), accumulates as the bf16 GEMM does and keeps the result."""
    if not on:
        yield
        return
    tied = model.lm_head
    head = torch.nn.Linear(tied.in_features, tied.out_features, bias=False, device="cuda", dtype=torch.float32)
    with torch.no_grad():
        head.weight.copy_(tied.weight.float())
    head.register_forward_pre_hook(lambda m, a: (a[0].float(),))
    model.lm_head = head
    try:
        yield
    finally:
        model.lm_head = tied


def routed_experts(model, runs):
    """Each position's routed experts in the teacher-forced request (the prompt, then the reference's
    tokens), as transformers' router chooses them: for every run, (prompt + tokens) positions ×
    layers × top-k ids, most probable first (SGLang's order)."""
    k = model.config.num_experts_per_tok
    out = []
    for r in runs:
        ids = torch.tensor([r["prompt"] + r["tokens"]], device=model.device)
        with torch.no_grad():
            logits = model(ids, output_router_logits=True).router_logits   # per layer: (T, E)
        top = [torch.topk(torch.softmax(l.float(), -1), k).indices for l in logits]  # per layer: (T, k)
        out.append(torch.stack(top, 1).tolist())                             # (T, layers, k)
    return out


def routed_agreement(ref, answers):
    """(positions × layers whose top-k sets are equal, their count) between transformers' router
    choices and the server's meta_info.routed_experts (base64 int32, positions × layers × k)."""
    import base64
    same = total = 0
    for want, a in zip(ref, answers):
        got = torch.frombuffer(bytearray(base64.b64decode(a["meta_info"]["routed_experts"])), dtype=torch.int32)
        got = got.view(-1, len(want[0]), len(want[0][0])).tolist()
        if len(got) != len(want):
            raise SystemExit("the server answered routed experts for %d positions, transformers %d" % (len(got), len(want)))
        for w, g in zip(want, got):
            for wl, gl in zip(w, g):
                same += set(wl) == set(gl)
                total += 1
    return same, total


def greedy(model, prompts):
    out_all = []
    for p in prompts:
        ids = torch.tensor([p], device="cuda")
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
        toks = out.sequences[0, len(p):].tolist()
        lps = [float(torch.log_softmax(l[0].float(), -1)[t]) for l, t in zip(out.logits, toks)]
        top2 = [l[0].float().topk(2).values for l in out.logits]
        out_all.append({"prompt": p, "tokens": toks, "logprobs": lps, "margins": [float(v[0] - v[1]) for v in top2]})
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


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def stats(diffs):
    return max(diffs or [0]), sum(diffs) / max(1, len(diffs))


def check_one(d, url, logits):
    with open(os.path.join(d, "parity-reference.json")) as f:
        saved = json.load(f)
    ref = saved["reference"][logits]
    same, total, diffs = agreement(ref, saved["eager"][logits])
    print("noise floor, transformers SDPA vs transformers eager attention: %d/%d = %.2f%% greedy tokens equal, "
          "logprob |diff| before divergence max %.2e mean %.2e" % ((same, total, 100 * same / total) + stats(diffs)))
    margins = sorted(m for r in ref for m in r["margins"])
    print("reference greedy margins (top-1 minus top-2 logit): min %.4f, median %.4f" % (margins[0], margins[len(margins) // 2]))
    free = post(url, "/generate", {"input_ids": [r["prompt"] for r in ref], "return_logprob": True,
                                   "sampling_params": {"max_new_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": True}})
    # teacher-forced: the reference's own continuation as the prompt, its logprobs read back
    routed = saved.get("routed_experts")
    forced_body = {"input_ids": [r["prompt"] + r["tokens"] for r in ref], "return_logprob": True,
                   "logprob_start_len": [len(r["prompt"]) - 1 for r in ref],
                   "sampling_params": {"max_new_tokens": 1, "temperature": 0}}
    if routed:
        forced_body["return_routed_experts"] = True
    forced = post(url, "/generate", forced_body)
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
    if routed:
        # the forced request's positions are its whole prompt (prompt + output − 1, the output one token)
        agree, cells = routed_agreement(routed, forced)
        print("routed experts equal to transformers' router choices: %d/%d = %.2f%% of positions × layers (reported)" % (
            agree, cells, 100 * agree / max(1, cells)))
    print("greedy tokens identical: %d/%d = %.2f%% (target >= 99%%)" % (same, total, 100 * frac))
    print("logprob |diff| free-running (before divergence): max %.2e mean %.2e over %d tokens" % (stats(free_diffs) + (len(free_diffs),)))
    print("logprob |diff| teacher-forced: max %.2e mean %.2e over %d tokens (target <= %.0e)" % (
        stats(forced_diffs) + (len(forced_diffs), TOLERANCE)))
    return frac >= 0.99 and stats(forced_diffs)[0] <= TOLERANCE and stats(free_diffs)[0] <= TOLERANCE


def check(d, url, logits):
    ok = {}
    for i, name in enumerate(CHECKPOINTS):
        path = os.path.join(d, name)
        if i > 0:  # the server started on the first; the others are loaded into it
            r = post(url, "/update_weights_from_disk", {"model_path": path, "weight_version": "parity-" + name})
            if not r.get("success"):
                raise SystemExit("update_weights_from_disk %s failed: %s" % (path, r))
        print("== %s (%s)" % (name, path))
        ok[name] = check_one(path, url, logits)
        print("GPU PARITY %s: %s" % (name, "PASSED" if ok[name] else "FAILED"))
    print("GPU PARITY (%s logits, judged on the trained checkpoint): %s" % (logits, "PASSED" if ok["trained"] else "FAILED"))
    return 0 if ok["trained"] else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "check"])
    ap.add_argument("dir")
    ap.add_argument("--arch", choices=["qwen3", "qwen3-moe"], default="qwen3")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--train-s", type=float, default=150)
    ap.add_argument("--logits", choices=["bf16", "fp32"], default="bf16",
                    help="the reference to compare with: fp32 for a server with rollout.fp32-lm-head")
    ap.add_argument("--url", default=os.environ.get("ROLLOUT_URL", "http://localhost:9080"))
    a = ap.parse_args()
    sys.exit(make(a.dir, a.layers, a.train_s, a.arch) if a.what == "make" else check(a.dir, a.url, a.logits))
