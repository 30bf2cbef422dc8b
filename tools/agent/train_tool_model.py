#!/usr/bin/env python3
"""Trains the tool-calling test model: the embedded default model's shape (a small Qwen3 with the
real 151,936-token vocabulary, rollout.runtime.DefaultModel.SPEC) taught to use the example
environment's calculator in the Qwen chat format, so that agent-loop tests and benchmarks see real
multi-turn episodes. A random model never writes a <tool_call>.

Input: transcripts from bench/java/dev/rollout/bench/AgentTranscripts.java (token ids and a loss
mask, tokenized by the server itself). Output: a compact safetensors file of a few MB, committed as
a test fixture, that Java expands into a full Hugging Face checkpoint (it/dev/rollout/ToolModel):

  - every layer's weights and the final norm under their Hugging Face names (bfloat16);
  - rollout.embed_rows (V', hidden) and rollout.embed_row_ids (V'): the embedding rows of the V'
    tokens the transcripts use. Every other row of the tied embedding is zero.

Why a subset: the full tied embedding is 39 MB and trains slowly on a CPU. A zero row's logit is
exactly 0 for every input (logits = norm(h) . row), so training on the V' rows plus one extra class
of logit log(vocab - V'), the summed probability of the zero rows, is exact, not an approximation:
the expanded model's softmax over the whole vocabulary is the trained one.

  python3 tools/agent/train_tool_model.py TRANSCRIPTS.jsonl OUT.safetensors [--steps N] [--seed S]

Runs on torch 1.13 (Debian's python3-torch, CPU) or newer, on a GPU when there is one. The
committed fixture (src/test/resources/agent/tool-model.safetensors) came from 8,000 transcripts and
3,000 steps of 64 on an H100 (`bench/gpu-session.sh toolmodels`, 100 s; every held-out transcript
right), made so:

  ROLLOUT_EXAMPLE_ENV_ENABLED=true ./mvnw liberty:run            # a server with the example environment
  ./mvnw -q dependency:build-classpath -Dmdep.outputFile=cp.txt -Dmdep.includeScope=test
  java -cp target/classes:target/test-classes:$(cat cp.txt) dev.rollout.bench.AgentTranscripts \
      http://localhost:9080 8000 11 tool.jsonl                     # GRPO's start: 8000 12 ... --direct 0.85
  mkdir -p target/agent && xz -9 -c tool.jsonl > target/agent/tool.jsonl.xz   # what the GPU stages read
"""
import argparse
import json
import math
import random
import struct
import time

import torch
import torch.nn.functional as F

# rollout.runtime.DefaultModel.SPEC: vocab, hidden, intermediate, layers, heads, kv heads, head dim
VOCAB, HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 151936, 128, 384, 4, 4, 2, 32
ROPE_THETA, EPS = 1_000_000.0, 1e-6


def rms_norm(x, w):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS))


def rope(x, positions):
    """Hugging Face's rotate-half RoPE. x (B, T, heads, d), positions (T)."""
    d = x.shape[-1]
    inv = 1.0 / (ROPE_THETA ** (torch.arange(0, d, 2, device=x.device).float() / d))
    ang = positions[:, None].float() * inv[None]  # (T, d/2)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    rot = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos[None, :, None, :] + rot * sin[None, :, None, :]


class ToolModel(torch.nn.Module):
    """Qwen3ForCausalLM's forward (q/k norms, GQA, SiLU MLP, tied head) over a vocabulary subset."""

    def __init__(self, rows):
        super().__init__()
        p = lambda *shape: torch.nn.Parameter(torch.randn(*shape) * 0.02)  # noqa: E731
        ones = lambda n: torch.nn.Parameter(torch.ones(n))  # noqa: E731
        self.embed = p(rows, HIDDEN)
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            m = torch.nn.Module()
            m.input_layernorm, m.post_attention_layernorm = ones(HIDDEN), ones(HIDDEN)
            m.q_proj, m.k_proj = p(HEADS * HEAD_DIM, HIDDEN), p(KV_HEADS * HEAD_DIM, HIDDEN)
            m.v_proj, m.o_proj = p(KV_HEADS * HEAD_DIM, HIDDEN), p(HIDDEN, HEADS * HEAD_DIM)
            m.q_norm, m.k_norm = ones(HEAD_DIM), ones(HEAD_DIM)
            m.gate_proj, m.up_proj, m.down_proj = p(INTER, HIDDEN), p(INTER, HIDDEN), p(HIDDEN, INTER)
            self.layers.append(m)
        self.norm = ones(HIDDEN)
        # the zero rows' summed probability: log(count) of a logit 0
        self.register_buffer("null_logit", torch.tensor([math.log(VOCAB - rows)]))

    def forward(self, ids):  # ids (B, T) in subset indices -> logits (B, T, V' + 1)
        b, t = ids.shape
        pos = torch.arange(t, device=ids.device)
        causal = torch.full((t, t), float("-inf"), device=ids.device).triu(1)
        h = self.embed[ids]
        for m in self.layers:
            x = rms_norm(h, m.input_layernorm)
            q = rms_norm((x @ m.q_proj.T).view(b, t, HEADS, HEAD_DIM), m.q_norm)
            k = rms_norm((x @ m.k_proj.T).view(b, t, KV_HEADS, HEAD_DIM), m.k_norm)
            v = (x @ m.v_proj.T).view(b, t, KV_HEADS, HEAD_DIM)
            q, k = rope(q, pos), rope(k, pos)
            g = HEADS // KV_HEADS
            k, v = k.repeat_interleave(g, dim=2), v.repeat_interleave(g, dim=2)
            att = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / math.sqrt(HEAD_DIM) + causal
            o = (att.softmax(-1) @ v.transpose(1, 2)).transpose(1, 2).reshape(b, t, HEADS * HEAD_DIM)
            h = h + o @ m.o_proj.T
            x = rms_norm(h, m.post_attention_layernorm)
            h = h + (F.silu(x @ m.gate_proj.T) * (x @ m.up_proj.T)) @ m.down_proj.T
        logits = rms_norm(h, self.norm) @ self.embed.T
        return torch.cat([logits, self.null_logit.expand(b, t, 1)], -1)


def batches(data, size, rng):
    while True:
        rng.shuffle(data)
        for i in range(0, len(data) - size + 1, size):
            yield data[i:i + size]


def pad(batch, device):
    t = max(len(ids) for ids, _ in batch)
    ids = torch.zeros(len(batch), t, dtype=torch.long)
    mask = torch.zeros(len(batch), t)
    for i, (x, m) in enumerate(batch):
        ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(m)] = torch.tensor(m, dtype=torch.float)
    return ids.to(device), mask.to(device)


def bf16_bytes(t):
    """float32 -> bfloat16 little-endian bytes, rounding to nearest even (as RandomCheckpoint does)."""
    bits = t.detach().float().cpu().contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF
    return rounded.to(torch.int16).numpy().tobytes()


def save(path, tensors, metadata):
    """A safetensors file: 8-byte header length, JSON header, raw little-endian data."""
    header, blobs, at = {"__metadata__": metadata}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transcripts")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lines = [json.loads(s) for s in open(a.transcripts)]
    used = sorted({i for line in lines for i in line["ids"]})
    index = {tok: i for i, tok in enumerate(used)}
    # ids and the mask of each *target* (the next token): the loss counts only the model's tokens
    data = [([index[i] for i in line["ids"]], line["mask"][1:] + [0]) for line in lines]
    held = data[-64:]
    train = data[:-64]
    model = ToolModel(len(used)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.05, 1 - s / a.steps))
    rng = random.Random(a.seed)
    t0 = time.time()
    print("%d transcripts, %d distinct tokens, %s" % (len(lines), len(used), device), flush=True)
    for step, batch in enumerate(batches(train, a.batch, rng)):
        if step == a.steps:
            break
        ids, mask = pad(batch, device)
        logits = model(ids)
        targets = torch.cat([ids[:, 1:], torch.zeros_like(ids[:, :1])], 1)
        loss = (F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none") * mask.flatten()).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == a.steps - 1:
            print("step %d loss %.4f (%.0f s)" % (step, loss.item(), time.time() - t0), flush=True)
    # held-out check: the model's greedy choice on every token it is to write
    with torch.no_grad():
        ids, mask = pad(held, device)
        targets = torch.cat([ids[:, 1:], torch.zeros_like(ids[:, :1])], 1)
        logits = model(ids)
        right = ((logits.argmax(-1) == targets).float() * mask).sum().item()
        seq_ok = (((logits.argmax(-1) == targets) | (mask == 0)).all(1)).float().mean().item()
        lp = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        worst = (lp * mask + (1 - mask) * 0).min().item()
    print("held out: %.4f of model tokens greedy-right, %.3f of transcripts wholly right, worst logprob %.3f"
          % (right / mask.sum().item(), seq_ok, worst), flush=True)
    t = {}
    for li, m in enumerate(model.layers):
        pre = "model.layers.%d." % li
        for name, param in [("input_layernorm", m.input_layernorm), ("post_attention_layernorm", m.post_attention_layernorm),
                            ("self_attn.q_proj", m.q_proj), ("self_attn.k_proj", m.k_proj), ("self_attn.v_proj", m.v_proj),
                            ("self_attn.o_proj", m.o_proj), ("self_attn.q_norm", m.q_norm), ("self_attn.k_norm", m.k_norm),
                            ("mlp.gate_proj", m.gate_proj), ("mlp.up_proj", m.up_proj), ("mlp.down_proj", m.down_proj)]:
            t[pre + name + ".weight"] = ("BF16", param.shape, bf16_bytes(param))
    t["model.norm.weight"] = ("BF16", model.norm.shape, bf16_bytes(model.norm))
    t["rollout.embed_rows"] = ("BF16", model.embed.shape, bf16_bytes(model.embed))
    t["rollout.embed_row_ids"] = ("I32", [len(used)], struct.pack("<%di" % len(used), *used))
    save(a.out, t, {"format": "pt", "trained_steps": str(a.steps), "seed": str(a.seed),
                    "held_out_token_accuracy": "%.4f" % (right / mask.sum().item())})
    print("wrote", a.out)


if __name__ == "__main__":
    main()
