#!/usr/bin/env python3
"""The transformers baseline of the benchmark protocol (../shared/research/perf-anchors.md §2.5, §5):
continuous batching (`init_continuous_batching`, `paged|sdpa`, the only paged attention the GPU
machine has) on the same prompt ids as EngineBench (SplitMix64, dev.rollout.bench.Prompts).

    python3 bench/hf_cb.py save DIR ARCH        # random weights in the HF layout, for both engines
    python3 bench/hf_cb.py run DIR grpo:P:n:IN:OUT ...
ARCH: qwen2.5-0.5b, qwen2.5-7b, qwen3-0.6b. Prints `RESULT {json}` lines like EngineBench.
"""
import json
import os
import sys
import time

import torch
sys.path.insert(0, os.path.dirname(__file__))
from prompts import prompts  # noqa: E402  the same ids as EngineBench's
from transformers import AutoConfig, AutoModelForCausalLM, ContinuousBatchingConfig, GenerationConfig, Qwen2Config, Qwen3Config

ARCHS = {  # public config.json values (perf-anchors §2.5)
    "qwen2.5-0.5b": lambda: Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
                                        max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6),
    "qwen2.5-7b": lambda: Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                      num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False,
                                      max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6),
    "qwen3-0.6b": lambda: Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                                      max_position_embeddings=40960, rope_theta=1e6, rms_norm_eps=1e-6),
}
def save(d, arch):
    torch.manual_seed(0)
    cfg = ARCHS[arch]()
    if arch == "qwen2.5-7b":  # 15 GB: only the config; EngineBench makes its weights on the GPU (--dummy)
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


def main():
    what, d = sys.argv[1], sys.argv[2]
    if what == "save":
        return save(d, sys.argv[3])
    cfg = AutoConfig.from_pretrained(d)
    try:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    except OSError:  # a config without weights (7B): random weights made on the GPU
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    print("RESULT " + json.dumps({"what": "hf_setup", "model": d, "torch": torch.__version__,
                                  "transformers": __import__("transformers").__version__,
                                  "device": torch.cuda.get_device_name()}), flush=True)
    for w in sys.argv[3:]:
        kind, *args = w.split(":")
        if kind != "grpo":
            raise SystemExit("hf_cb.py runs grpo workloads only, not " + w)
        grpo(model, *map(int, args))


if __name__ == "__main__":
    main()
