#!/usr/bin/env python3
"""Reads async-profiler's collapsed stacks (bench/cpu-online.sh): samples under a frame, split by
the frames below it.

    python3 bench/collapsed.py FILE FRAME [DEPTH] [--without FRAME2]

e.g. `collapsed.py after.collapsed EngineLoop.step 1 --without ModelRunner.run`: the engine
thread's host work per step, the model runner's own time left out. A sample is 200 us of CPU at
cpu-online.sh's interval."""
import argparse
import collections

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("frame")
ap.add_argument("depth", nargs="?", type=int, default=1)
ap.add_argument("--without", help="leave out the samples whose stack has this frame below FRAME")
a = ap.parse_args()
split, total = collections.Counter(), 0
for line in open(a.file):
    stack, n = line.rstrip("\n").rsplit(" ", 1)
    frames = stack.split(";")
    at = next((i for i, f in enumerate(frames) if f.endswith(a.frame)), None)
    if at is None:
        continue
    below = frames[at + 1:]
    if a.without and any(f.endswith(a.without) for f in below):
        continue
    total += int(n)
    split[" > ".join(f.split("/")[-1] for f in below[:a.depth]) or "(self)"] += int(n)
print(a.frame, total)
for k, n in split.most_common(25):
    print("  %6d  %5.1f%%  %s" % (n, 100.0 * n / max(total, 1), k))
