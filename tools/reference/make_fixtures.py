#!/usr/bin/env python3
"""Builds tiny random-weight checkpoints with Hugging Face transformers and records what the
reference implementation generates from them, so that the Java engine can be checked against it
in CI (src/test/resources/fixtures/<arch>/).

Run on the GPU machine (torch 2.11, transformers 5.17; no hub access needed):
    python3 tools/reference/make_fixtures.py OUT_DIR

Each fixture directory holds the checkpoint exactly as `save_pretrained` writes it plus
`reference.json`: for fixed prompts, the greedy continuation and, computed in fp32 with eager
attention, the log-softmax of every generated token and of every prompt token after the first.
"""
import json
import math
import os
import sys

import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM)

SEED = 1234
NEW_TOKENS = 12
TOP_K = 5
PROMPTS = [
    [1, 2, 3, 4, 5],
    [17, 300, 42, 42, 7, 99, 256, 3, 480, 11, 5, 64, 128, 77, 200, 1, 9],
    [(i * 37 + 11) % 509 for i in range(40)],
]

COMMON = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    bos_token_id=0,
    eos_token_id=1,
)

# (name, model class, config, dtype written to disk, max shard size or None)
ARCHS = [
    ("qwen2", Qwen2ForCausalLM,
     Qwen2Config(**COMMON, tie_word_embeddings=True, rope_theta=10000.0), torch.float32, None),
    ("qwen3", Qwen3ForCausalLM,
     Qwen3Config(**COMMON, head_dim=16, tie_word_embeddings=False, rope_theta=1000000.0), torch.float32, "150KB"),
    ("llama", LlamaForCausalLM,
     LlamaConfig(**COMMON, tie_word_embeddings=False, rope_theta=500000.0,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
     torch.bfloat16, None),
    # mixtures of experts: 8 experts, 2 per token; Qwen3-MoE with a dense layer between two sparse
    # ones (mlp_only_layers), Qwen2-MoE with its gated shared expert, Mixtral in bf16 on disk
    ("qwen3_moe", Qwen3MoeForCausalLM,
     Qwen3MoeConfig(**{**COMMON, "num_hidden_layers": 3}, head_dim=16, tie_word_embeddings=False, rope_theta=1000000.0,
                    num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                    decoder_sparse_step=1, mlp_only_layers=[1]), torch.float32, None),
    ("qwen2_moe", Qwen2MoeForCausalLM,
     Qwen2MoeConfig(**COMMON, tie_word_embeddings=False, rope_theta=10000.0, num_experts=8, num_experts_per_tok=2,
                    moe_intermediate_size=32, shared_expert_intermediate_size=48, norm_topk_prob=False), torch.float32, None),
    ("mixtral", MixtralForCausalLM,
     MixtralConfig(**COMMON, tie_word_embeddings=False, rope_theta=1000000.0, num_local_experts=8, num_experts_per_tok=2),
     torch.bfloat16, None),
]


def randomize(model):
    """HF's own init leaves biases at zero and norms at one, which would not test them."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def record(model, prompt):
    ids = list(prompt)
    logits = model(torch.tensor([ids])).logits[0].float()          # (T, V)
    lp = torch.log_softmax(logits, dim=-1)
    prompt_logprobs = [None] + [lp[i - 1, ids[i]].item() for i in range(1, len(ids))]
    out, out_lp, top = [], [], []
    for _ in range(NEW_TOKENS):
        last = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)  # (V,)
        tok = int(torch.argmax(last))
        vals, idx = torch.topk(last, TOP_K)
        sorted_lp = torch.sort(last, descending=True).values
        out.append(tok)
        out_lp.append(last[tok].item())
        top.append([[v.item(), int(i)] for v, i in zip(vals, idx)])
        # The margin tells the test how safe an argmax comparison is.
        ids.append(tok)
    result = {"input_ids": list(prompt), "output_ids": out, "output_logprobs": out_lp,
              "output_top_logprobs": top, "input_logprobs": prompt_logprobs}
    k = getattr(model.config, "num_experts_per_tok", None)
    if k:
        # each position's routed experts in every MoE layer, as the router chose them (top-k of its
        # softmax, most probable first), over the prompt and every generated token but the last
        routed = model(torch.tensor([ids[:-1]]), output_router_logits=True).router_logits   # per MoE layer: (T, E)
        probs = [torch.softmax(r.float(), dim=-1) for r in routed]
        result["routed_experts"] = [[torch.topk(p[t], k).indices.tolist() for p in probs] for t in range(len(ids) - 1)]
        # the gap between the k-th and the next expert's probability: how safe a comparison of choices is
        margins = [torch.sort(p, dim=-1, descending=True).values for p in probs]
        result["min_router_margin"] = min((m[:, k - 1] - m[:, k]).min().item() for m in margins)
    return result


def main(out_dir):
    torch.manual_seed(SEED)
    for name, cls, config, dtype, shard in ARCHS:
        config._attn_implementation = "eager"
        model = cls(config).float().eval()
        randomize(model)
        path = os.path.join(out_dir, name)
        kwargs = {"max_shard_size": shard} if shard else {}
        model.to(dtype).save_pretrained(path, **kwargs)
        # The reference runs in fp32 on exactly the weights that were written (bf16-rounded too).
        ref = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
        results = [record(ref, p) for p in PROMPTS]
        min_margin = math.inf
        for r in results:
            for step in r["output_top_logprobs"]:
                min_margin = min(min_margin, step[0][0] - step[1][0])
        if hasattr(config, "num_experts_per_tok"):
            print(name, "min router margin %.5f" % min(r["min_router_margin"] for r in results),
                  "MoE layers", len(results[0]["routed_experts"][0]))
        with open(os.path.join(path, "reference.json"), "w") as f:
            json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                       "dtype_on_disk": str(dtype).replace("torch.", ""), "seed": SEED,
                       "min_top1_margin": min_margin, "prompts": results}, f, indent=1)
        print(name, "->", path, sorted(os.listdir(path)), "min top-1 margin %.4f" % min_margin)
        print(open(os.path.join(path, "config.json")).read())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
