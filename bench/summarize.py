#!/usr/bin/env python3
"""Turns the `RESULT {json}` lines of EngineBench, hf_cb.py, online.py and weight_push.py logs into
the markdown tables of docs/benchmarks.md, with our engine beside transformers on the same shape.

    python3 bench/summarize.py $OUT/bench.log [more logs...]
"""
import json
import sys


def load(paths):
    out = []
    for p in paths:
        with open(p) as f:
            for line in f:
                if line.startswith("RESULT "):
                    out.append(json.loads(line[7:]))
    return out


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main():
    results = load(sys.argv[1:])
    setups = [r for r in results if r["what"] == "setup"]
    for s in setups:
        print("engine: %s, %s, decode attention %s%s" % (s["model"], s["dtype"], s.get("decode_attention"),
                                                        ", dummy weights" if s.get("dummy") else ""))
    hf = {(r["prompts"], r["n"], r["in"], r["out"]): r for r in results if r["what"] == "hf_grpo"}
    grpo = [r for r in results if r["what"] == "grpo"]
    if grpo:
        rows = []
        for r in grpo:
            key = (r["prompts"], r["n"], r["in"], r["out"])
            h = hf.get(key)
            rows.append(["%d x %d, %d in, %d out" % key, r.get("run", 1), "%d / %d" % (r["generated"], r["expected"]), r["makespan_s"],
                         "%.0f" % r["out_tok_s"], "%.0f" % r["ceiling_tok_s"], "%.1f%%" % (100 * r["roofline_fraction"]),
                         "%.0f" % h["out_tok_s"] if h else "-", "%.1fx" % (r["out_tok_s"] / h["out_tok_s"]) if h else "-"])
        print("\n" + table(["workload", "run", "tokens", "makespan s", "out tok/s", "HBM ceiling tok/s", "of ceiling",
                             "transformers CB tok/s", "ratio"], rows))
    steps = [r for r in results if r["what"] in ("decode", "sweep")]
    if steps:
        rows = [[r["what"], r.get("run", 1), r["batch"], r["in"], r["out"], r["step_ms_p50"], r["step_ms_p99"], r["floor_ms"],
                 "%.1f%%" % (100 * r["roofline_fraction"]), "%.0f" % r["out_tok_s"]] for r in steps]
        print("\n" + table(["workload", "run", "batch", "in", "out", "step ms p50", "p99", "HBM floor ms", "of floor", "out tok/s"], rows))
    hf_steps = [r for r in results if r["what"] in ("hf_decode", "hf_sweep")]
    if hf_steps:
        ours = {(r["batch"], r["in"], r["out"]): r for r in steps}
        rows = []
        for r in hf_steps:
            o = ours.get((r["batch"], r["in"], r["out"]))
            rows.append([r["what"], r["batch"], r["in"], r["out"], r["step_ms"], r["floor_ms"], "%.1f%%" % (100 * r["roofline_fraction"]),
                         o["step_ms_p50"] if o else "-", "%.1fx" % (r["step_ms"] / o["step_ms_p50"]) if o else "-"])
        print("\n" + table(["transformers generate", "batch", "in", "out", "step ms", "HBM floor ms", "of floor",
                             "ours step ms p50", "ours faster"], rows))
    online = [r for r in results if r["what"] == "online"]
    if online:
        rows = [[r["rate"], "%d / %d" % (r["completed"], r["requests"]), r["makespan_s"], "%.0f" % r["out_tok_s"],
                 "%s / %s" % (r["ttft_ms_p50"], r["ttft_ms_p99"]), "%s / %s" % (r["tpot_ms_p50"], r["tpot_ms_p99"]),
                 "%s / %s" % (r["e2e_ms_p50"], r["e2e_ms_p99"])] for r in online]
        print("\n" + table(["rate req/s", "completed", "makespan s", "out tok/s", "TTFT ms p50/p99", "TPOT ms p50/p99",
                             "E2E ms p50/p99"], rows))
    pushes = [r for r in results if r["what"] == "push"]
    if pushes:
        size = next((r["bytes"] for r in results if r["what"] == "push_setup"), 0)
        rows = [[r["way"], r["median_s"], r["min_s"], r["gb_per_s"], "%d / %d" % (r["verified"], r["repeat"])] for r in pushes]
        print("\n%.2f GB of weights per push" % (size / 1e9))
        print(table(["from", "median s", "min s", "GB/s", "verified"], rows))
    hf_pushes = [r for r in results if r["what"] == "hf_push"]
    if hf_pushes:
        rows = [[r["way"], "%.2f GB" % (r["bytes"] / 1e9), r["median_s"], r["min_s"], r["gb_per_s"]] for r in hf_pushes]
        print("\ntransformers, load_state_dict in its own process")
        print(table(["from", "size", "median s", "min s", "GB/s"], rows))


if __name__ == "__main__":
    main()
