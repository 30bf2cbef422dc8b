#!/usr/bin/env python3
"""The compiled PyTorch baseline of issue #20: transformers' model with a static KV cache, its decode
step compiled by torch.compile (inductor, mode "reduce-overhead") and so replayed as a CUDA graph:
the gpt-fast recipe on transformers' own modelling code. Same prompt ids (bench/prompts.py), same
sampling (temperature 1, top-p 1, top-k off, EOS ignored) and the same HBM floors as EngineBench.

    python3 bench/hf_compiled.py run DIR [--hbm-gbps 3000] [--device cuda|cpu] [--eager] WORKLOAD ...
WORKLOAD, as EngineBench's:
    decode:IN:OUT        R4: one request (ms per output token: the p50 decode step)
    sweep:IN:OUT:B,...   R5: a static batch of B requests (p50 decode step per B)
    grpo:P:n:IN:OUT      R1/R2 as one static batch of P*n rows: the P prompts prefilled once, their
                         KV copied to their n rows (as our engine shares the prefix); makespan, tok/s
Prompts use EngineBench's seeds (99 + B for decode and sweeps, 1234 for grpo; hf_cb.py's sweeps use
1234). RESULT lines are hfc_setup, hfc_decode, hfc_sweep and hfc_grpo with "engine": "torch-compiled",
hf_cb.py's keys for the same workload plus EngineBench's (step_ms_p50/p99, ceiling_tok_s, ...), so
that summarize.py's pairing of hf_cb.py's lines with ours is left alone.
DIR is a checkpoint of `hf_cb.py save`; a DIR with only config.json (7B) gets random weights made on
the device, as hf_cb.py and EngineBench --dummy do. `--eager` runs the same loop uncompiled.

Why a hand-written loop and not `generate(..., cache_implementation="static", compile_config=...)`:
transformers' generate compiles only the model's forward; every step it still runs in eager Python
the logits copy, the logits processors, `torch.multinomial` (which its own comment says cannot be
captured), the `torch.cat` of the ids and the stopping criteria, and it gives no per-step times.
Here one compiled function per static batch does a whole decode step: the forward over the static
cache, the draw, and the write of the token into the step's input and the output buffer, so a
replay of its CUDA graph is all a step launches. It uses transformers' own pieces (`StaticCache`,
the model's forward with `past_key_values`/`logits_to_keep`), the path that transformers' generate
itself compiles; only grpo's shared prefix writes the static layers' keys, values and
cumulative_length directly.

What the baseline pays, as transformers does: attention reads the whole static cache (IN + OUT
positions, masked) every step, and with a mask SDPA gets K and V repeated to every query head
(transformers' repeat_kv). The floor is still EngineBench's (context IN + OUT/2) so that both
engines' fractions are of the same number.

Timing: warm-up (compilation, then cudagraph trees' warm-up run and recording) is done on the same
shapes before the timed pass and reported as compile_s. The timed pass runs without a host sync per
step (a replay needs none: the token stays on the device); a CUDA event after each step gives the
per-step times, whose p50 is step_ms (step_ms_p50), and wall_ms_per_step is the decode loop's wall
time between two syncs over its steps. Our engine reads every token back each step; this loop does
not, which can only favour the baseline. On CPU (a logic check only) steps are timed on the host.
"""
import json
import os
import sys
import time

import torch
sys.path.insert(0, os.path.dirname(__file__))
from prompts import prompts  # noqa: E402  the same ids as EngineBench's
from transformers import AutoConfig, AutoModelForCausalLM, StaticCache  # noqa: E402

ENGINE = "torch-compiled"


def result(what, **fields):
    print("RESULT " + json.dumps({"what": what, "engine": ENGINE, **fields}), flush=True)


def load(d, device):
    try:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="sdpa").to(device)
    except OSError:  # a config without weights (7B): random weights made on the device, as hf_cb.py does
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16,
                                                     attn_implementation="sdpa")
    return model.eval()


class Floor:
    """EngineBench's HBM floor of a decode step: every weight read once (a tied head once), every
    sequence's KV read once, at the card's measured copy bandwidth."""

    def __init__(self, model, gbps):
        c = model.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.kv_per_token = c.num_hidden_layers * 2 * c.num_key_value_heads * head_dim * 2  # K and V, bf16
        self.weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self.bytes_per_s = gbps * 1e9

    def seconds(self, batch, context):
        return (self.weight_bytes + batch * context * self.kv_per_token) / self.bytes_per_s


def draw(logits):
    """One token per row from softmax(logits) (temperature 1, no top-k/top-p): the Gumbel-max trick,
    argmax(logits - log E) with E ~ Exp(1), is an exact draw that stays on the device and, unlike
    torch.multinomial, compiles into the step's graph."""
    e = torch.empty_like(logits, dtype=torch.float32).exponential_(1)
    return torch.argmax(logits.float() - e.log(), dim=-1)


def decode_step(model, cache, cur, out, pos):
    """One decode step of every row: forward of `cur` over the static cache, a draw, the token written
    as the next step's input and into column `pos` of `out`. Tensors only change in place, so the
    compiled step is one CUDA graph whose replays need no input copies."""
    logits = model(input_ids=cur, past_key_values=cache, use_cache=True).logits[:, -1]
    tok = draw(logits)[:, None]
    cur.copy_(tok)
    out.index_copy_(1, pos, tok)
    pos.add_(1)


class Batch:
    """A static batch of `rows` sequences of IN + OUT tokens: its StaticCache, its token buffers and
    the compiled decode step. The buffers keep their addresses (marked static, as StaticCache marks
    its own), so cudagraph trees treat them like the weights: no copy in, mutated in place."""

    def __init__(self, model, rows, inp, out, compiled):
        self.model, self.rows, self.inp, self.out_len = model, rows, inp, out
        dev = model.device
        self.cache = StaticCache(config=model.config, max_cache_len=inp + out)
        c = model.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.cache.early_initialization(rows, c.num_key_value_heads, head_dim, model.dtype, dev)
        self.cur = torch.zeros(rows, 1, dtype=torch.long, device=dev)
        self.out = torch.zeros(rows, out, dtype=torch.long, device=dev)
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)
        for t in (self.cur, self.out, self.pos):
            torch._dynamo.mark_static_address(t)
        self.step_fn = compiled
        self.graphs = dev.type == "cuda"

    def prefill(self, ids, n=1):
        """Eager prefill (transformers' advice: prefill shapes vary, decode's do not) of the unique
        prompts `ids` (P, IN); with n > 1 their KV is copied to n rows each, like a shared prefix.
        Samples the first output token of every row. The cache must be empty (`cache.reset()`)."""
        if n == 1:
            logits = self.model(input_ids=ids, past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        else:
            once = StaticCache(config=self.model.config, max_cache_len=self.inp)
            logits = self.model(input_ids=ids, past_key_values=once, use_cache=True, logits_to_keep=1).logits[:, -1]
            for big, small in zip(self.cache.layers, once.layers):
                big.keys[:, :, :self.inp].copy_(small.keys.repeat_interleave(n, dim=0))
                big.values[:, :, :self.inp].copy_(small.values.repeat_interleave(n, dim=0))
                big.cumulative_length.fill_(self.inp)
            logits = logits.repeat_interleave(n, dim=0)  # each row then draws its own first token
        tok = draw(logits)[:, None]
        self.cur.copy_(tok)
        self.out[:, :1].copy_(tok)
        self.pos.fill_(1)

    def step(self):
        if self.graphs:
            # a new iteration: nothing of the previous replay is still in use
            torch.compiler.cudagraph_mark_step_begin()
        self.step_fn(self.model, self.cache, self.cur, self.out, self.pos)

    def decode(self, timer):
        """The OUT - 1 decode steps after prefill; returns the per-step seconds."""
        return timer.run(self.step, self.out_len - 1)


class Timer:
    """Per-step times without a host sync per step on CUDA (an event after each step), on the host
    elsewhere."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, fn, steps):
        if not self.cuda:
            times = []
            for _ in range(steps):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return times
        events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
        events[0].record()
        for k in range(steps):
            fn()
            events[k + 1].record()
        torch.cuda.synchronize()
        return [events[k].elapsed_time(events[k + 1]) / 1e3 for k in range(steps)]


def compile_step(mode):
    if mode == "none":
        return decode_step
    # dynamic=False: every static batch is specialised on its shapes, as gpt-fast's decode is
    return torch.compile(decode_step, mode=mode, fullgraph=True, dynamic=False)


def cudagraph_skips():
    from torch._dynamo.utils import counters
    return counters["inductor"]["cudagraph_skips"]


def run_batch(model, ids, n, inp, out, mode, timer):
    """Warm-up then one timed pass of a static batch; returns (batch, compile_s, prefill_s, step times,
    decode wall s, makespan_s)."""
    torch._dynamo.reset()  # a fresh compilation per static batch (and the last batch's graphs freed)
    if timer.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    b = Batch(model, len(ids) * n, inp, out, compile_step(mode))
    ids = torch.tensor(ids, device=model.device)
    with torch.no_grad():
        b.prefill(ids, n)
        timer.sync()
        t = time.perf_counter()
        # the first call compiles and runs cudagraph trees' warm-up, the second records the graph, the
        # third replays it: the timed pass below only replays
        for _ in range(3):
            b.step()
        timer.sync()
        compile_s = time.perf_counter() - t
        b.cache.reset()  # zeroes the cache (outside the timed pass) and its lengths
        timer.sync()
        t0 = time.perf_counter()
        b.prefill(ids, n)
        timer.sync()
        t1 = time.perf_counter()
        times = b.decode(timer)
        timer.sync()
        t2 = time.perf_counter()
    return b, compile_s, t1 - t0, times, t2 - t1, t2 - t0


def sig4(x):
    return float("%.4g" % x)  # EngineBench's %.4g: a tiny test model's fraction does not round to 0


def pct(times, q):
    s = sorted(times)
    return s[min(len(s) - 1, int(len(s) * q))]


def check(b, vocab):
    """Every step wrote its column (the step counter reached OUT) and every token is in the vocabulary."""
    o = b.out.cpu()
    return bool(((o >= 0) & (o < vocab)).all()) and int(b.pos.item()) == b.out_len


def steps(model, what, inp, out, batches, floor, mode, timer):
    """R4/R5: B requests at once, the p50 decode step against the floor at context IN + OUT/2."""
    vocab = model.config.vocab_size
    for batch in batches:
        ids = prompts(batch, inp, 99 + batch, vocab)  # EngineBench's sweep seeds
        b, compile_s, prefill_s, times, wall, makespan = run_batch(model, ids, 1, inp, out, mode, timer)
        p50 = pct(times, 0.5)
        floor_s = floor.seconds(batch, inp + out / 2.0)
        result("hfc_" + what, batch=batch, **{"in": inp}, out=out, decode_steps=len(times), step_ms=round(1e3 * p50, 3),
               step_ms_p50=round(1e3 * p50, 3), step_ms_p99=round(1e3 * pct(times, 0.99), 3),
               wall_ms_per_step=round(1e3 * wall / len(times), 3), floor_ms=round(1e3 * floor_s, 3),
               roofline_fraction=sig4(floor_s / p50), out_tok_s=round(batch / p50, 1),
               prefill_s=round(prefill_s, 4), makespan_s=round(makespan, 3), compile_s=round(compile_s, 2),
               compile_mode=mode, cudagraph_skips=cudagraph_skips(), tokens_ok=check(b, vocab), **memory(timer))
        del b


def grpo(model, p, n, inp, out, floor, mode, timer):
    """R1/R2 as one static batch of P*n rows: makespan from prefill to the last token."""
    vocab = model.config.vocab_size
    ids = prompts(p, inp, 1234, vocab)  # EngineBench's grpo seed
    b, compile_s, prefill_s, times, wall, makespan = run_batch(model, ids, n, inp, out, mode, timer)
    rows = p * n
    generated = rows * out if check(b, vocab) else 0
    o = b.out.cpu().view(p, n, out)
    differ = sum(int(torch.unique(o[i], dim=0).shape[0] == n) for i in range(p))  # prompts whose n samples all differ
    ceiling_s = sum(floor.seconds(rows, inp + k) for k in range(1, out + 1))
    tok_s = generated / makespan
    ceiling = rows * out / ceiling_s
    result("hfc_grpo", prompts=p, n=n, **{"in": inp}, out=out, finished=rows, generated=generated, expected=rows * out,
           warmup_s=round(compile_s, 3), compile_s=round(compile_s, 2), prefill_s=round(prefill_s, 4),
           makespan_s=round(makespan, 3), out_tok_s=round(tok_s, 1), ceiling_tok_s=round(ceiling),
           roofline_fraction=sig4(tok_s / ceiling), step_ms_p50=round(1e3 * pct(times, 0.5), 3),
           prompts_with_distinct_samples=differ, compile_mode=mode, cudagraph_skips=cudagraph_skips(), **memory(timer))
    del b


def memory(timer):
    if not timer.cuda:
        return {}
    return {"peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def main():
    if len(sys.argv) < 4 or sys.argv[1] != "run":
        raise SystemExit(__doc__)
    d, args = sys.argv[2], sys.argv[3:]
    gbps, device, eager, workloads = 3000.0, "cuda", False, []
    i = 0
    while i < len(args):
        if args[i] == "--hbm-gbps":
            gbps, i = float(args[i + 1]), i + 2
        elif args[i] == "--device":
            device, i = args[i + 1], i + 2
        elif args[i] == "--eager":
            eager, i = True, i + 1
        else:
            workloads.append(args[i])
            i += 1
    device = torch.device(device)
    # CUDA graphs exist only on CUDA; elsewhere inductor's default mode checks the compiled logic
    mode = "none" if eager else ("reduce-overhead" if device.type == "cuda" else "default")
    if device.type == "cuda":
        torch._logging.set_logs(perf_hints=True)  # says why, if cudagraph trees skip a graph
    torch.manual_seed(0)
    t = time.perf_counter()
    model = load(d, device)
    floor = Floor(model, gbps)
    result("hfc_setup", model=d, torch=torch.__version__, transformers=__import__("transformers").__version__,
           device=torch.cuda.get_device_name() if device.type == "cuda" else str(device), compile_mode=mode,
           weight_bytes=floor.weight_bytes, kv_bytes_per_token=floor.kv_per_token, hbm_gbps=gbps,
           load_s=round(time.perf_counter() - t, 2))
    timer = Timer(device)
    for w in workloads:
        kind, *a = w.split(":")
        if kind == "decode":
            steps(model, "decode", int(a[0]), int(a[1]), [1], floor, mode, timer)
        elif kind == "sweep":
            steps(model, "sweep", int(a[0]), int(a[1]), [int(x) for x in a[2].split(",")], floor, mode, timer)
        elif kind == "grpo":
            grpo(model, *map(int, a), floor, mode, timer)
        else:
            raise SystemExit("unknown workload " + w)


if __name__ == "__main__":
    main()
