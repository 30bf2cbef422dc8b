#!/usr/bin/env python3
"""Sums Nsight Compute's per-kernel times (ncu --csv --metrics gpu__time_duration.sum, on stdin)
by kernel name: launches, total and mean microseconds, share of the total, largest first. The
profiled launches should cover whole steps (--launch-skip past the warm-up, --launch-count a
multiple of a step's kernels), so that the shares are a step's."""
import collections
import csv
import sys

# the unit as Nsight Compute writes it: "nsecond" in some versions, "ns" in others (2025.x on the H100s)
SCALE = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
rows = csv.reader(line for line in sys.stdin if line.startswith('"'))
header = next(rows, None)
if header is None:
    sys.exit("ncu-summary: no CSV on stdin")
name_at, unit_at, value_at = header.index("Kernel Name"), header.index("Metric Unit"), header.index("Metric Value")
total = collections.defaultdict(float)
count = collections.Counter()
for r in rows:
    if len(r) <= value_at:
        continue
    if r[unit_at] not in SCALE:
        sys.exit("ncu-summary: unknown time unit %r" % r[unit_at])
    us = float(r[value_at].replace(",", "")) * SCALE[r[unit_at]]
    name = r[name_at].split("(")[0][:90]
    total[name] += us
    count[name] += 1
grand = sum(total.values())
print(f"{sum(count.values())} launches, {grand:.1f} us in all")
for name, us in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"{count[name]:6d} {us:10.1f} us {us / count[name]:8.2f} us/launch {100 * us / grand:5.1f}%  {name}")
