#!/usr/bin/env python3
"""Short streamed generations from many clients against a running server, printing the server
process's glibc main heap ([heap]) and resident memory every 10 s: how the native heap behaves
under serving alone (docs/benchmarks-log.md, 2026-11-26, "The GPU soak complete", "jemalloc"). Standard library only.

    python3 bench/heap_load.py --pid "$(pgrep -n -f ws-server.jar)" --requests 6000 --clients 16
"""
import argparse
import json
import random
import threading
import time
import urllib.request


def heap_and_rss_mib(pid):
    rss = heap = 0
    in_heap = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            p = line.split()
            if "-" in p[0] and len(p) >= 5 and not p[0].endswith(":"):
                in_heap = len(p) > 5 and p[5] == "[heap]"
            elif p[0] == "Rss:":
                rss += int(p[1])
                heap += int(p[1]) if in_heap else 0
    return heap // 1024, rss // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True, help="the server's JVM")
    ap.add_argument("--url", default="http://localhost:9080")
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--no-stream", dest="stream", action="store_false")
    args = ap.parse_args()
    done = [0]

    def client(k):
        rng = random.Random(k)
        while done[0] < args.requests:
            body = {"input_ids": [rng.randrange(1000, 100000) for _ in range(2)], "stream": args.stream,
                    "sampling_params": {"max_new_tokens": rng.randrange(4, 17), "temperature": 1.0}}
            req = urllib.request.Request(args.url + "/generate", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                r.read()
            done[0] += 1

    print("start: main heap / RSS MiB", heap_and_rss_mib(args.pid), flush=True)
    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(10)
        print("  %d requests, %.0f s: main heap / RSS MiB %s" % (done[0], time.time() - t0, heap_and_rss_mib(args.pid)), flush=True)
    print("end: main heap / RSS MiB", heap_and_rss_mib(args.pid))


if __name__ == "__main__":
    main()
