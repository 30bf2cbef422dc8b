#!/usr/bin/env python3
"""The RL-control-plane soak at GPU scale, against a running server (tools/dist/gpu-run.sh starts
one on the GPU machine with pickles allowed).

While STREAMS clients stream /generate without pause, it makes PUSHES consecutive weight pushes.
Each push cycles through five transports (base64 safetensors, flattened bucket, raw safetensors
body, CUDA-IPC descriptors, SGLang/veRL ForkingPickler payloads) and, independently, three ways
of meeting the running requests (wait for them, pause in place, abort them); every fifth push is
an atomic session of three buckets. After every push it checks that the pushed weights are the
ones generating: the served version is the pushed one, and the logprob of the greedy token on a
fixed prompt equals that of transformers with the same weights (bf16 tolerance). Every 20th push
it compares the server's SHA-256 of each pushed tensor with its own. Then CYCLES
release/resume/reload cycles. It counts hangs and failures, and reports heap, resident and GPU
memory of the server process over the run.

    tools/dist/gpu-run.sh python3 bench/rl_soak.py [--pushes 1000] [--streams 256] [--cycles 100]
        [--deadline-s 500]
"""
import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import queue
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "reference"))
import make_pickles as mp  # noqa: E402  SGLang's classes and patched reducer, under their real module paths
import torch  # noqa: E402
from safetensors.torch import save as safetensors_bytes  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

PROMPT = [9707, 11, 1879]
# Logprob agreement with transformers. This model's logits are about 8 in size and come out of a
# bf16 matmul, where one rounding step is 0.03-0.06: two engines whose hidden states differ in
# the last bit may round a logit one step apart. A push changes the logprob by far more (the
# report gives the median shift), and each served logprob must also be nearer the reference for
# the pushed weights than the one for the weights before.
TOLERANCE = 0.1


class Server:
    def __init__(self, url):
        self.url = url

    def call(self, path, body=None, raw=None, query="", timeout=300):
        if raw is not None:
            data, ctype = raw, "application/octet-stream"
        else:
            data, ctype = (None if body is None else json.dumps(body).encode()), "application/json"
        req = urllib.request.Request(self.url + path + query, data=data, headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def metric(self, name):
        with urllib.request.urlopen(self.url + "/metrics?scope=base", timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def biggest_mappings(pid, n=6):
    """The server's resident memory by mapping (file or [anon]/[heap]), largest first: where growth lives."""
    sizes, name = {}, "?"
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                sizes[name] = sizes.get(name, 0) + int(parts[1]) * 1024
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join("%s %.0f MiB" % (os.path.basename(k) or k, v / 2**20) for k, v in top)


def main_heap_bytes(pid):
    """Resident size of glibc's main arena (the [heap] mapping): where freed-but-kept malloc memory shows."""
    rss, in_heap = 0, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                in_heap = len(parts) > 5 and parts[5] == "[heap]"
            elif in_heap and parts[0] == "Rss:":
                rss += int(parts[1]) * 1024
    return rss


def jcmd(pid, *command):
    """Runs jcmd of the server's own runtime (the distribution bundles it); None where there is none."""
    exe = os.path.join(os.path.dirname(os.path.realpath("/proc/%d/exe" % pid)), "jcmd")
    if not os.path.exists(exe):
        return None
    return subprocess.run([exe, str(pid), *command], capture_output=True, text=True, timeout=120).stdout


def native_memory_probe(server, pid):
    """Where the native memory outside the Java heap went. Three readings of glibc's main heap
    (empty under jemalloc) and of the resident memory: as the run left them, after a full
    collection (which frees tensors whose handles were dropped without a close), and after the
    allocator gives its free pages back (System.trim_native_heap, i.e. malloc_trim). Growth that
    the collection removes waited for the GC; growth that the trim removes was free memory the
    allocator kept; what stays is live."""
    def reading():
        return "glibc main heap %.0f MiB, RSS %.0f MiB" % (main_heap_bytes(pid) / 2**20, rss_bytes(pid) / 2**20)
    lines = ["native memory as left: " + reading()]
    if jcmd(pid, "GC.run") is None:
        return lines + ["(no jcmd beside the server's java: no collection or trim)"]
    time.sleep(2)  # JavaCPP's deallocator thread frees what the collection found
    lines.append("after a full GC:       " + reading())
    jcmd(pid, "System.trim_native_heap")
    lines.append("after malloc_trim:     " + reading())
    nmt = jcmd(pid, "VM.native_memory", "summary") or ""
    for line in nmt.splitlines():  # the JVM's own share, where -XX:NativeMemoryTracking is on
        if line.startswith("Total:") or "malloc:" in line and line.strip().startswith("("):
            lines.append("JVM native memory tracking: " + line.strip())
            break
    return lines


def gpu_bytes(pid):
    """Device memory the server process holds, as nvidia-smi sees it (libtorch's cache included).
    Where a container hides other processes' pids: the device's used memory less this process's
    tensors (so it includes this driver's CUDA context, a constant few hundred MiB)."""
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        p, mib = [x.strip() for x in line.split(",")]
        if p == str(pid):
            return int(mib) << 20
    free, total = torch.cuda.mem_get_info()
    return total - free - torch.cuda.memory_reserved()


def stream(server, stop, record):
    """Generates over and over until stopped. An abort counts as expected only when a weight update caused it."""
    rng = random.Random()
    while not stop.is_set():
        body = {"input_ids": [rng.randrange(1000, 100000), rng.randrange(1000, 100000)], "stream": True,
                "sampling_params": {"max_new_tokens": rng.randrange(4, 17), "temperature": 1.0}}
        req = urllib.request.Request(server.url + "/generate", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                last, done = None, False
                for line in r:
                    line = line.decode().strip()
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: "):
                        last = line[6:]
                if not done or last is None:
                    record("failure: stream ended without [DONE]")
                else:
                    fr = json.loads(last)["meta_info"]["finish_reason"]
                    if fr["type"] != "abort":
                        record("completed")
                    elif "weight update" in fr.get("message", ""):
                        record("aborted")
                    else:
                        record("failure: unexplained abort %s" % fr)
        except Exception as e:  # a refused connection or a timeout is a failure, not a crash of the soak
            record("failure: %r" % e)


def stream_process(k, url, n, stop, completed, aborted, failures):
    """n streaming clients in one process: the soak's own threads would otherwise fight the push loop for the GIL."""
    def record(outcome):
        if outcome == "completed":
            with completed.get_lock():
                completed.value += 1
        elif outcome == "aborted":
            with aborted.get_lock():
                aborted.value += 1
        else:
            failures.put(outcome)

    server = Server(url)
    threads = [threading.Thread(target=stream, args=(server, stop, record), daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(300)
    failures.put((k, sum(t.is_alive() for t in threads)))


class Streams:
    """STREAMS clients spread over a few processes, forked before this process touches CUDA."""

    def __init__(self, url, streams, processes=8):
        ctx = multiprocessing.get_context("fork")
        self.stop = ctx.Event()
        self.completed, self.aborted = ctx.Value("q", 0), ctx.Value("q", 0)
        self.queue = ctx.Queue()
        self.failures = []
        self.hung = {}  # process index -> streams that did not stop
        self.sizes = [streams // processes + (1 if k < streams % processes else 0) for k in range(min(processes, streams))]
        self.procs = [ctx.Process(target=stream_process, args=(k, url, n, self.stop, self.completed, self.aborted, self.queue))
                      for k, n in enumerate(self.sizes)]
        for p in self.procs:
            p.start()

    def collect(self):
        """Moves what the processes reported into failures and hung."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, tuple):
                self.hung[item[0]] = item[1]
            else:
                self.failures.append(item)

    def finish(self):
        """Stops every stream; returns how many did not stop within 5 minutes."""
        self.stop.set()
        deadline = time.time() + 330
        for p in self.procs:
            p.join(max(1, deadline - time.time()))
        time.sleep(0.5)
        self.collect()
        for p in self.procs:
            if p.is_alive():
                p.kill()
        # a process that never reported could not join its threads: all of its streams count as hung
        return sum(self.hung.get(k, n) for k, n in enumerate(self.sizes))


class Reference:
    """transformers with the same weights as the server: the judge of every push."""

    def __init__(self, model_path, dtype):
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).cuda().eval()
        self.params = dict(self.model.named_parameters())
        self.tied = self.model.config.tie_word_embeddings

    def apply(self, named):
        with torch.no_grad():
            for n, t in named:
                self.params[n].copy_(t)

    def greedy(self):
        with torch.no_grad():
            logits = self.model(torch.tensor([PROMPT], device="cuda")).logits[0, -1].float()
        lp = torch.log_softmax(logits, -1)
        tok = int(lp.argmax())
        return tok, float(lp[tok])

    def parameter_names(self):
        return [n for n in self.params if not (self.tied and n == "lm_head.weight")]


def sha256(t, dtype):
    return hashlib.sha256(t.detach().to(dtype).contiguous().cpu().view(torch.uint8).numpy().tobytes()).hexdigest()


def bucket_body(transport, named, i):
    """(json body, raw body, query) for one bucket in the given transport."""
    named = [(n, t.contiguous()) for n, t in named]
    if transport == "safetensors":
        blob = safetensors_bytes(dict(named))
        return {"serialized_named_tensors": [base64.b64encode(blob).decode()]}, None, ""
    if transport == "binary":
        return None, safetensors_bytes(dict(named)), ""
    if transport == "flattened_bucket":
        parts, meta, start = [], [], 0
        for n, t in named:
            b = t.view(-1).view(torch.uint8).cpu().numpy().tobytes()
            meta.append({"name": n, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                         "start_idx": start, "end_idx": start + len(b)})
            parts.append(b)
            start += len(b)
        return {"serialized_named_tensors": [base64.b64encode(b"".join(parts)).decode()],
                "load_format": "flattened_bucket", "flattened_bucket_metadata": meta}, None, ""
    if transport == "cuda_ipc":
        return {"load_format": "cuda_ipc", "cuda_ipc_tensors": [mp.ipc_descriptor(n, t) for n, t in named]}, None, ""
    if transport == "pickle":
        # SGLang's adapter pickles (name, tensor) pairs; veRL wraps each tensor in LocalSerializedTensor
        if i % 2 == 0:
            blob = mp.serialize(named, patched=True)
        else:
            blob = mp.serialize([(n, mp.LocalSerializedTensor(values=[mp.serialize(t, patched=True)])) for n, t in named],
                                patched=True)
        return {"serialized_named_tensors": [base64.b64encode(blob).decode()], "load_format": None}, None, ""
    raise ValueError(transport)


def push(server, transport, named, version, mode, i, extra=None):
    body, raw, _ = bucket_body(transport, named, i)
    if mode == "in_place":
        s, o = server.call("/pause_generation", {"mode": "in_place"})
        assert s == 200, ("pause", s, o)
    try:
        if raw is not None:
            q = "?abort_all_requests=%s" % ("true" if mode == "abort" else "false")
            if version is not None:
                q += "&weight_version=" + version
            if extra:
                q += "".join("&%s=%s" % kv for kv in extra.items())
            return server.call("/update_weights_from_tensor", raw=raw, query=q)
        body.update({"abort_all_requests": mode == "abort"})
        if version is not None:
            body["weight_version"] = version
        body.update(extra or {})
        return server.call("/update_weights_from_tensor", body)
    finally:
        if mode == "in_place":
            s, o = server.call("/continue_generation", {})
            assert s == 200, ("continue", s, o)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("ROLLOUT_URL", "http://localhost:9080"))
    ap.add_argument("--server-pid", type=int, default=int(os.environ.get("ROLLOUT_SERVER_PID", "0")),
                    help="the server's JVM, for its resident memory (gpu-run.sh sets ROLLOUT_SERVER_PID)")
    ap.add_argument("--pushes", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--deadline-s", type=float, default=500, help="stop pushing after this long, and say so")
    # narrower runs, to tell which path a cost or a leak comes from
    ap.add_argument("--transports", default="safetensors,flattened_bucket,binary,cuda_ipc,pickle")
    ap.add_argument("--modes", default="wait,in_place,abort")
    ap.add_argument("--streams-only-s", type=float, default=0,
                    help="first let the streams run alone this long, and report the server's memory before and after")
    ap.add_argument("--no-sessions", dest="sessions", action="store_false",
                    help="leave out the three-bucket sessions and the whole-model pushes")
    args = ap.parse_args()
    server = Server(args.url)
    t_start = time.time()
    streams = Streams(args.url, args.streams)
    info = server.call("/get_server_info")[1]
    model_path = server.call("/get_model_info")[1]["model_path"]
    engine_dtype = server.call("/weights_checker", {})[1]["ranks"][0]["dtype"]  # the resolved one, not "auto"
    dtype = {"BFloat16": torch.bfloat16, "Half": torch.float16, "Float": torch.float32}[engine_dtype]
    ref = Reference(model_path, dtype)
    print("server: device %s, dtype %s, model %s; torch %s on %s" % (info["device"], engine_dtype, model_path,
                                                                      torch.__version__, torch.cuda.get_device_name()))
    gen = torch.Generator(device="cuda").manual_seed(0)
    targets = ["model.norm.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.2.mlp.up_proj.weight"]
    transports = args.transports.split(",")
    modes = args.modes.split(",")

    def sample(name):
        p = ref.params[name]
        scale = 1.0 if name.endswith("norm.weight") else 0.15
        base = 0.5 if name.endswith("norm.weight") else 0.0
        return (torch.randn(p.shape, generator=gen, device="cuda") * scale * (0.2 if base else 1) + base).to(dtype)

    def memory():
        return {"rss": rss_bytes(args.server_pid), "heap": server.metric("memory_usedHeap_bytes"),
                "committed": server.metric("memory_committedHeap_bytes"), "gpu": gpu_bytes(args.server_pid),
                "main_heap": main_heap_bytes(args.server_pid)}

    time.sleep(2)
    mem0 = memory()
    if args.streams_only_s > 0:  # what serving alone costs, apart from the pushes
        time.sleep(args.streams_only_s)
        streams.collect()
        m = memory()
        print("streams only for %.0f s: %d completed; glibc main heap %.0f -> %.0f MiB, RSS %.0f -> %.0f MiB" % (
            args.streams_only_s, streams.completed.value, mem0["main_heap"] / 2**20, m["main_heap"] / 2**20,
            mem0["rss"] / 2**20, m["rss"] / 2**20), flush=True)
        mem0 = m
    smaps0 = biggest_mappings(args.server_pid)
    mem_half = None
    problems, lp_diffs, token_flips, checks, by_kind = [], [], 0, 0, {}

    def problem(msg):
        problems.append(msg)
        print("PROBLEM", msg, flush=True)

    previous_lp, shifts, previous_ref, ref_shifts = None, 0, None, []
    t0 = time.time()
    done = 0
    for i in range(args.pushes):
        if time.time() - t_start > args.deadline_s:
            print("deadline reached after %d pushes" % i)
            break
        if i == args.pushes // 2:
            mem_half = memory()
        version = "gpu-soak-%d" % i
        mode = modes[i % len(modes)]
        t1 = time.time()
        if i % 100 == 99 and args.sessions:
            # the whole model in one CUDA-IPC push: large payloads, fused q/k/v and gate/up included
            kind = "full-model cuda_ipc"
            named = [(n, ref.params[n].detach().clone()) for n in ref.parameter_names()]
            named[0] = (named[0][0], named[0][1] + 0.001 * torch.randn(named[0][1].shape, generator=gen, device="cuda").to(dtype))
            s, o = push(server, "cuda_ipc", named, version, mode, i)
        elif i % 5 == 4 and args.sessions:
            kind = "session of 3 buckets (%s)" % transports[(i // 5) % len(transports)]
            named = [(n, sample(n)) for n in targets]
            uid = "soak-%d" % i
            s, o = server.call("/begin_weight_update", {"update_id": uid, "timeout_s": 120})
            for seq, nt in enumerate(named if s == 200 else []):
                s, o = push(server, transports[(i // 5 + seq) % len(transports)], [nt], None, "wait", i,
                            {"update_id": uid, "bucket_seq": seq})
                if s != 200:
                    o = "bucket %d (%s): %s" % (seq, transports[(i // 5 + seq) % len(transports)], o)
                    server.call("/abort_weight_update", {"update_id": uid})
                    break
            if s == 200:
                if mode == "in_place":
                    server.call("/pause_generation", {"mode": "in_place"})
                s, o = server.call("/end_weight_update", {"update_id": uid, "weight_version": version,
                                                          "abort_all_requests": mode == "abort"})
                if mode == "in_place":
                    server.call("/continue_generation", {})
        else:
            kind = transports[i % len(transports)]
            named = [(n, sample(n)) for n in targets[: 1 + i % 3]]
            s, o = push(server, kind, named, version, mode, i)
        push_s = time.time() - t1
        key = "%s/%s" % (kind.split(" (")[0], mode)
        by_kind.setdefault(key, []).append(push_s)
        if s != 200:
            problem("push %d (%s, %s): %s %s" % (i, kind, mode, s, str(o)[:300]))
            continue
        ref.apply(named)
        del named  # the server has copied what it needs from the IPC handles before answering
        s, out = server.call("/generate", {"input_ids": PROMPT, "return_logprob": True,
                                           "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
        if s != 200:
            problem("generate after push %d: %s %s" % (i, s, str(out)[:300]))
            continue
        served_version = out["meta_info"]["weight_version"]
        served_lp, served_tok = out["meta_info"]["output_token_logprobs"][0][:2]
        want_tok, want_lp = ref.greedy()
        if previous_ref is not None and served_tok == want_tok == previous_ref[0]:
            shift = abs(want_lp - previous_ref[1])
            ref_shifts.append(shift)
            if abs(served_lp - want_lp) >= shift and shift > TOLERANCE:
                problem("push %d (%s): served logprob %.5f is nearer the previous weights' %.5f than the pushed %.5f" % (
                    i, kind, served_lp, previous_ref[1], want_lp))
        previous_ref = (want_tok, want_lp)
        if served_version != version:
            problem("push %d: served version %s, pushed %s" % (i, served_version, version))
        if served_tok != want_tok:
            # a bf16 near-tie may pick the other token; the logprob of the served token must still agree
            token_flips += 1
        lp_diffs.append(abs(served_lp - want_lp) if served_tok == want_tok else 0.0)
        if served_tok == want_tok and abs(served_lp - want_lp) > TOLERANCE:
            problem("push %d (%s): logprob %.5f, transformers %.5f" % (i, kind, served_lp, want_lp))
        if previous_lp is not None and abs(served_lp - previous_lp) > 1e-6:
            shifts += 1
        previous_lp = served_lp
        if i % 20 == 19:
            sums = server.call("/weights_checker", {})[1]["ranks"][0]["checksums"]
            for n in targets:
                if sums[n] != sha256(ref.params[n], dtype):
                    problem("push %d: checksum of %s differs" % (i, n))
            checks += 1
        done = i + 1
        if done % 100 == 0:
            streams.collect()
            print("  %d pushes, %.0f s, %d streams completed, %d aborted, %d failures, %d problems" % (
                done, time.time() - t0, streams.completed.value, streams.aborted.value, len(streams.failures), len(problems)),
                flush=True)
    push_seconds = time.time() - t0
    mem_pushes = memory()
    hung = streams.finish()

    # release/resume cycles: the memory goes back, and a resumed server needs a push before it serves
    t1 = time.time()
    cycles_done, released_gpu, resumed_gpu, mem_cycles = 0, [], [], None
    for c in range(args.cycles):
        if time.time() - t_start > args.deadline_s + 60:
            print("deadline reached after %d cycles" % c)
            break
        if c == args.cycles // 4:
            mem_cycles = memory()
        s, o = server.call("/release_memory_occupation", {"tags": None})
        if s != 200:
            problem("release %d: %s %s" % (c, s, o))
            continue
        released_gpu.append(gpu_bytes(args.server_pid))
        s, o = server.call("/resume_memory_occupation", {"tags": None})
        if s != 200 or not o.get("weights_must_be_pushed"):
            problem("resume %d: %s %s" % (c, s, o))
            continue
        resumed_gpu.append(gpu_bytes(args.server_pid))
        s, o = server.call("/update_weights_from_disk", {"model_path": model_path, "weight_version": "cycle-%d" % c})
        if s != 200:
            problem("reload %d: %s %s" % (c, s, o))
            continue
        s, o = server.call("/generate", {"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 2, "temperature": 0}})
        if s != 200 or o["meta_info"]["weight_version"] != "cycle-%d" % c:
            problem("generate after cycle %d: %s %s" % (c, s, str(o)[:200]))
            continue
        cycles_done += 1
    cycle_seconds = time.time() - t1
    mem_end = memory()

    mib = lambda b: b / 2**20  # noqa: E731
    outside = lambda m: mib(m["rss"] - m["committed"])  # noqa: E731
    print("\n== GPU soak: %s, torch %s ==" % (torch.cuda.get_device_name(), torch.__version__))
    print("pushes: %d of %d in %.1f s (%.0f ms each) under %d streams" % (done, args.pushes, push_seconds,
                                                                        1000 * push_seconds / max(done, 1), args.streams))
    for k in sorted(by_kind):
        v = sorted(by_kind[k])
        print("  %-34s n=%4d  median %7.1f ms  p99 %7.1f ms  max %7.1f ms" % (
            k, len(v), 1000 * v[len(v) // 2], 1000 * v[min(len(v) - 1, int(len(v) * 0.99))], 1000 * v[-1]))
    print("streams: %d completed, %d aborted by abort_all pushes, %d failed, %d hung" % (
        streams.completed.value, streams.aborted.value, len(streams.failures), hung))
    print("verification: %d pushes served their version; logprob vs transformers max |diff| %.2e (bound %.0e); "
          "%d greedy-token flips (bf16 near-ties); logprob shifted on %d of %d pushes, median shift %.3f; "
          "%d checksum rounds" % (done, max(lp_diffs or [0]), TOLERANCE, token_flips, shifts, max(done - 1, 0),
                                  sorted(ref_shifts)[len(ref_shifts) // 2] if ref_shifts else 0, checks))
    print("release/resume/reload cycles: %d of %d in %.1f s; server GPU memory after release %.0f..%.0f MiB, "
          "after resume %.0f..%.0f MiB" % (cycles_done, args.cycles, cycle_seconds, mib(min(released_gpu or [0])),
                                          mib(max(released_gpu or [0])), mib(min(resumed_gpu or [0])), mib(max(resumed_gpu or [0]))))
    for name, m in [("start", mem0), ("half of the pushes", mem_half or mem0), ("after pushes", mem_pushes),
                    ("quarter of the cycles", mem_cycles or mem_pushes), ("end", mem_end)]:
        print("memory %-22s RSS %6.0f MiB, used heap %5.0f MiB, outside the committed heap %6.0f MiB, GPU %6.0f MiB, "
              "glibc main heap %6.0f MiB" % (
                  name, mib(m["rss"]), mib(m["heap"]), outside(m), mib(m["gpu"]), mib(m["main_heap"])))
    print("resident by mapping at the start:", smaps0)
    print("resident by mapping at the end:  ", biggest_mappings(args.server_pid))
    for line in native_memory_probe(server, args.server_pid):
        print(line)
    for p in streams.failures[:30]:
        print("STREAM FAILURE", p)
    ok = not problems and not streams.failures and not hung and done == args.pushes and cycles_done == args.cycles
    print("GPU SOAK", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
