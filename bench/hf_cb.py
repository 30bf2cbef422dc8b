#!/usr/bin/env python3
"""The transformers baseline of the benchmark protocol (docs/benchmark-protocol.md):
continuous batching (`init_continuous_batching`, `paged|sdpa`, the only paged attention the GPU
machine has) on the same prompt ids as EngineBench (SplitMix64, dev.rollout.bench.Prompts).

    python3 bench/hf_cb.py save DIR ARCH        # random weights in the HF layout, for both engines
    python3 bench/hf_cb.py run DIR [--hbm-gbps 3000] WORKLOAD ...
WORKLOAD, as EngineBench's:
    grpo:P:n:IN:OUT      R1/R2: continuous batching, P prompts x n samples (makespan, output tok/s)
    decode:IN:OUT        R4: `generate` for one request (ms per output token)
    sweep:IN:OUT:B,...   R5: `generate` for a static batch of B (ms per decode step)
    push                 R8's in-process counterpart: `load_state_dict` of every weight from GPU
                         tensors, from host memory and from the checkpoint's safetensors on disk
ARCH: qwen2.5-0.5b, qwen2.5-7b, qwen3-0.6b, qwen3-30b-a3b (config only). Prints `RESULT {json}` lines like EngineBench, each
step time beside its HBM floor (every weight and every sequence's KV read once per step).
"""
import json
import os
import sys
import time

import torch
sys.path.insert(0, os.path.dirname(__file__))
from prompts import prompts  # noqa: E402  the same ids as EngineBench's
from transformers import (AutoConfig, AutoModelForCausalLM, ContinuousBatchingConfig, GenerationConfig, Qwen2Config, Qwen3Config,
                          Qwen3MoeConfig)

ARCHS = {  # public config.json values of the Hugging Face checkpoints
    "qwen2.5-0.5b": lambda: Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
                                        max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6),
    "qwen2.5-7b": lambda: Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                      num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False,
                                      max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6),
    "qwen3-0.6b": lambda: Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                                      max_position_embeddings=40960, rope_theta=1e6, rms_norm_eps=1e-6),
    "qwen3-30b-a3b": lambda: Qwen3MoeConfig(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=48,
                                            num_attention_heads=32, num_key_value_heads=4, head_dim=128, num_experts=128,
                                            num_experts_per_tok=8, moe_intermediate_size=768, norm_topk_prob=True,
                                            decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False,
                                            max_position_embeddings=40960, rope_theta=1e6, rms_norm_eps=1e-6),
}
def save(d, arch):
    torch.manual_seed(0)
    cfg = ARCHS[arch]()
    if arch in ("qwen2.5-7b", "qwen3-30b-a3b"):  # 15 and 61 GB: only the config; EngineBench makes its weights on the GPU (--dummy)
        cfg.save_pretrained(d)
        print("wrote config", d)
        return
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(d)
    print("wrote", d, sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")


def grpo(model, p, n, inp, out):
    ids = prompts(p, inp, 1234, model.config.vocab_size)
    gen = GenerationConfig(max_new_tokens=out, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                           eos_token_id=-1, pad_token_id=0, num_return_sequences=n)
    mgr = model.init_continuous_batching(generation_config=gen,
                                         continuous_batching_config=ContinuousBatchingConfig(max_memory_percent=0.5))
    t = time.perf_counter()
    mgr.warmup()
    warm = time.perf_counter() - t
    mgr.start()
    t0 = time.perf_counter()
    mgr.add_requests(inputs=ids, max_new_tokens=out)
    done = {}
    deadline = t0 + 400
    while len(done) < p * n and time.perf_counter() < deadline:
        r = mgr.get_result(timeout=1)
        if r is not None and r.is_finished():
            done[r.request_id] = r
    makespan = time.perf_counter() - t0
    mgr.stop(block=True)
    generated = sum(len(r.generated_tokens) for r in done.values())
    print("RESULT " + json.dumps({"what": "hf_grpo", "prompts": p, "n": n, "in": inp, "out": out, "finished": len(done),
                                  "generated": generated, "expected": p * n * out, "warmup_s": round(warm, 3),
                                  "makespan_s": round(makespan, 3), "out_tok_s": round(generated / makespan, 1)}), flush=True)


def floor_s(model, batch, context, gbps):
    """The HBM floor of one decode step, as EngineBench computes it."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_per_token = c.num_hidden_layers * 2 * c.num_key_value_heads * head_dim * 2  # K and V, bf16
    weights = sum(p.numel() * p.element_size() for p in model.parameters())  # tied embeddings once
    return (weights + batch * context * kv_per_token) / (gbps * 1e9)


def timed_generate(model, ids, out):
    """Seconds for `generate` of `out` tokens (sampled, no early stop) from the (B, IN) ids."""
    gen = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, eos_token_id=None, pad_token_id=0)
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=out, min_new_tokens=out, **gen)
    torch.cuda.synchronize()
    return time.perf_counter() - t


def steps(model, what, inp, out, batches, gbps):
    """Decode step time of `generate` at each batch size: (time for OUT tokens - time for 1) / (OUT - 1)."""
    for b in batches:
        ids = torch.tensor(prompts(b, inp, 1234, model.config.vocab_size), device="cuda")
        timed_generate(model, ids, 4)  # warm-up
        first = min(timed_generate(model, ids, 1) for _ in range(2))
        total = timed_generate(model, ids, out)
        step = (total - first) / (out - 1)
        floor = floor_s(model, b, inp + out / 2.0, gbps)
        print("RESULT " + json.dumps({"what": "hf_" + what, "batch": b, "in": inp, "out": out, "step_ms": round(1e3 * step, 3),
                                      "floor_ms": round(1e3 * floor, 3), "roofline_fraction": round(floor / step, 4),
                                      "out_tok_s": round(b / step, 1)}), flush=True)


def push(model, d, repeat=3):
    """R8's in-process counterpart: every weight replaced by `load_state_dict`, from GPU tensors, from
    host memory and from the safetensors on disk (what a trainer sharing the process would do)."""
    from safetensors.torch import load_file
    files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".safetensors"))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # the model's own bytes (tied embeddings once); load_state_dict copies a tied tensor once per name
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    host = {k: v.cpu() for k, v in state.items()}
    ways = {"gpu": lambda: model.load_state_dict(state, strict=False),
            "host": lambda: model.load_state_dict(host, strict=False)}
    if files:
        ways["disk"] = lambda: [model.load_state_dict(load_file(f, device="cuda"), strict=False) for f in files]
    for way, fn in ways.items():
        times = []
        for _ in range(repeat):
            torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.no_grad():
                fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        med = sorted(times)[len(times) // 2]
        print("RESULT " + json.dumps({"what": "hf_push", "way": way, "bytes": size, "median_s": round(med, 4),
                                      "min_s": round(min(times), 4), "gb_per_s": round(size / med / 1e9, 2)}), flush=True)


def main():
    what, d = sys.argv[1], sys.argv[2]
    if what == "save":
        return save(d, sys.argv[3])
    args = sys.argv[3:]
    gbps = 3000.0
    if args[:1] == ["--hbm-gbps"]:
        gbps, args = float(args[1]), args[2:]
    cfg = AutoConfig.from_pretrained(d)
    try:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    except OSError:  # a config without weights (7B): random weights made on the GPU
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    print("RESULT " + json.dumps({"what": "hf_setup", "model": d, "torch": torch.__version__,
                                  "transformers": __import__("transformers").__version__,
                                  "device": torch.cuda.get_device_name()}), flush=True)
    for w in args:
        kind, *a = w.split(":")
        if kind == "grpo":
            grpo(model, *map(int, a))
        elif kind == "decode":
            steps(model, "decode", int(a[0]), int(a[1]), [1], gbps)
        elif kind == "sweep":
            steps(model, "sweep", int(a[0]), int(a[1]), [int(b) for b in a[2].split(",")], gbps)
        elif kind == "push":
            push(model, d)
        else:
            raise SystemExit("unknown workload " + w)


if __name__ == "__main__":
    main()
