#!/usr/bin/env python3
"""ncu-sum — sums an `ncu --csv --page raw` report (metrics gpu__time_duration.sum, launch__grid_size,
launch__block_size) per kernel and grid: calls, total and mean microseconds, sorted by total.
Used by scripts/gpu-check's kt step: which kernels a decode step spends its time in."""
import csv, sys, collections

rows = list(csv.reader(open(sys.argv[1], errors="replace")))
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None:
    print("no kernels in", sys.argv[1]); sys.exit(0)
h = rows[hdr]
ki, ti = h.index("Kernel Name"), h.index("gpu__time_duration.sum")
gi = h.index("launch__grid_size") if "launch__grid_size" in h else None
agg = collections.defaultdict(lambda: [0, 0.0])
total = 0.0
for r in rows[hdr + 1:]:
    if len(r) <= ti:
        continue
    try:
        t = float(r[ti].replace(",", ""))
    except ValueError:
        continue  # the units row
    name = r[ki].split("(")[0] if not r[ki].startswith("void ") else r[ki][5:].split("(")[0]
    key = (name, r[gi] if gi is not None else "")
    agg[key][0] += 1
    agg[key][1] += t
    total += t
print(f"{sum(v[0] for v in agg.values())} kernels, {total / 1e3:.1f} us in kernels")
for (name, grid), (n, t) in sorted(agg.items(), key=lambda kv: -kv[1][1])[: int(sys.argv[2]) if len(sys.argv) > 2 else 40]:
    print(f"{t / 1e3:10.1f} us {100 * t / total:5.1f}% {n:6d} x {t / n / 1e3:8.2f} us  grid {grid:>8}  {name}")
