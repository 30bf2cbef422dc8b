#!/usr/bin/env python3
"""R6 of the benchmark protocol (docs/benchmark-protocol.md): online serving over HTTP.

Requests of fixed shape (token ids in, EOS ignored, temperature 1) arrive as a Poisson process at
each given rate ("inf": all at once), each streamed over SSE from the server's /generate. Reports
per rate: makespan, output tok/s, TTFT, TPOT (time per output token after the first) and E2E
latency, p50 and p99, and checks that every request produced every token. Standard library only,
so it runs on any machine; prompt ids are bench's SplitMix64 ones (dev.rollout.bench.Prompts).

    python3 bench/online.py --url http://localhost:9080 --requests 512 --in 512 --out 256 --rates inf,16,4
"""
import argparse
import json
import multiprocessing
import os
import random
import re
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from prompts import prompts  # noqa: E402


def one(url, ids, out_len, result):
    body = {"input_ids": ids, "stream": True,
            "sampling_params": {"max_new_tokens": out_len, "temperature": 1.0, "ignore_eos": True}}
    req = urllib.request.Request(url + "/generate", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.time()
    first, last, tokens, error = None, None, 0, None
    try:
        with urllib.request.urlopen(req, timeout=3600) as r:
            for line in r:
                line = line.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                # a total in both streaming styles (cumulative chunks, or incremental ones)
                n = chunk.get("meta_info", {}).get("completion_tokens", 0)
                if n > tokens:
                    now = time.time()
                    if first is None:
                        first = now
                    last, tokens = now, n
    except Exception as e:  # counted, and the run is marked failed
        error = repr(e)
    result.update(start=t0, first=first, last=last, tokens=tokens, error=error)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def client(url, ids, out, offsets, t0, conn):
    """One client process: a thread per request, each started at t0 + its arrival offset."""
    results = [dict() for _ in ids]
    threads = []
    for i, (p, at) in enumerate(zip(ids, offsets)):
        delay = t0 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(url, p, out, results[i]), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    conn.send(results)
    conn.close()


def step_times(url):
    """The server's rollout:step_model and rollout:step_host timers (seconds summed, and counts) from /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=60) as r:
        text = r.read().decode()
    out = {}
    for part in ("model", "host"):
        for stat in ("sum", "count"):
            m = re.search(r"^rollout:step_%s_seconds_%s\{[^}]*\} ([0-9.eE+-]+)" % (part, stat), text, re.M)
            out["%s_%s" % (part, stat)] = float(m.group(1)) if m else 0.0
    return out


def run(url, vocab, n, inp, out, rate, processes, seed=7):
    """Requests spread round-robin over client processes: one Python process parsing 512 streams
    of SSE events (each chunk carries the output ids so far, as SGLang's do) is slower than the
    server, and would measure itself."""
    ids = prompts(n, inp, 4321, vocab)
    rng = random.Random(seed)
    offsets, at = [], 0.0
    for i in range(n):
        if rate != float("inf") and i > 0:
            at += rng.expovariate(rate)
        offsets.append(at)
    ctx = multiprocessing.get_context("fork")
    t0 = time.time() + 0.5  # every process ready before the first arrival
    workers = []
    for k in range(processes):
        mine = list(range(k, n, processes))
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=client, args=(url, [ids[i] for i in mine], out, [offsets[i] for i in mine], t0, send))
        proc.start()
        workers.append((mine, recv, proc))
    results = [None] * n
    for mine, recv, proc in workers:
        for i, r in zip(mine, recv.recv()):
            results[i] = r
        proc.join()
    # times are wall-clock (time.time) in every process, so they compare across processes
    t0 = min(t0, min(r["start"] for r in results))
    makespan = max((r["last"] or r["start"]) for r in results) - t0
    ok = [r for r in results if r["error"] is None and r["tokens"] == out]
    ttft = [r["first"] - r["start"] for r in ok]
    tpot = [(r["last"] - r["first"]) / (out - 1) for r in ok if out > 1]
    e2e = [r["last"] - r["start"] for r in ok]
    generated = sum(r["tokens"] for r in results)
    rep = {"what": "online", "rate": "inf" if rate == float("inf") else rate, "requests": n, "in": inp, "out": out,
           "completed": len(ok), "failed": n - len(ok), "generated": generated, "expected": n * out,
           "makespan_s": round(makespan, 3), "out_tok_s": round(generated / makespan, 1)}
    for name, xs in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        rep[name + "_ms_p50"] = round(1000 * pct(xs, 0.5), 2)
        rep[name + "_ms_p99"] = round(1000 * pct(xs, 0.99), 2)
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        rep["first_error"] = errors[0][:300]
    return rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("ROLLOUT_URL", "http://localhost:9080"))
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--in", dest="inp", type=int, default=512)
    ap.add_argument("--out", type=int, default=256)
    ap.add_argument("--rates", default="inf", help="comma-separated requests per second; inf = all at once")
    ap.add_argument("--processes", type=int, default=8, help="client processes the requests are spread over")
    ap.add_argument("--vocab", type=int, help="the model's vocabulary size (default: read from its config.json, same host)")
    a = ap.parse_args()
    vocab = a.vocab
    if vocab is None:
        with urllib.request.urlopen(a.url + "/get_model_info", timeout=60) as r:
            path = json.loads(r.read())["model_path"]
        with open(os.path.join(path, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
    failed = False
    for rate in a.rates.split(","):
        # the same prompts every pass: drop the prefix cache so that each pass prefills them again
        key = os.environ.get("ROLLOUT_ADMIN_KEY")  # flush_cache is an admin call where the server has a key
        urllib.request.urlopen(urllib.request.Request(a.url + "/flush_cache", data=b"", method="POST",
                                                      headers={"Authorization": "Bearer " + key} if key else {}), timeout=60).read()
        before = step_times(a.url)
        rep = run(a.url, vocab, a.requests, a.inp, a.out, float(rate), a.processes)
        after = step_times(a.url)
        steps = after["model_count"] - before["model_count"]
        # the engine's own split of its steps: in the model runner, and applying the tokens (host only)
        rep["engine_steps"] = int(steps)
        for part in ("model", "host"):
            rep["step_%s_ms_mean" % part] = round(1e3 * (after[part + "_sum"] - before[part + "_sum"]) / max(1, steps), 3)
        print("RESULT " + json.dumps(rep), flush=True)
        failed |= rep["failed"] > 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
