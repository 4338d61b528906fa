#!/usr/bin/env python3
"""Turns scripts/load --soak samples (soak.csv) into a Markdown report: a table at regular intervals, the
growth of each memory series between the end of warm-up (first fifth) and the end, a least-squares slope
over the same span, and the load summary. Usage: soak-report.py SOAK.csv SUMMARY.properties OUT.md COMMAND"""
import csv
import sys

csv_path, summary_path, out_path, command = sys.argv[1:5]
rows = []
with open(csv_path) as f:
    for r in csv.DictReader(f):
        try:
            rows.append({k: float(v) if v not in ("", None) else None for k, v in r.items()})
        except ValueError:
            continue
summary = {}
try:
    with open(summary_path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                summary.setdefault(k, v)
except OSError:
    pass

if rows and all(not r.get("heap_live_after_gc_mib") for r in rows):
    # G1 reports live data only after a concurrent marking cycle; none happened in this run
    for r in rows:
        r["heap_live_after_gc_mib"] = None
for r in rows:
    # what the JVM does not account for: the engine's own allocations, the mapped model file, libc
    r["outside_jvm_mib"] = (r["rss_mib"] - r["nmt_committed_mib"]
                            if r.get("rss_mib") is not None and r.get("nmt_committed_mib") is not None else None)

series = [
    ("rss_mib", "process RSS"),
    ("heap_used_mib", "JVM heap used (saw-tooth between GCs)"),
    ("heap_live_after_gc_mib", "JVM heap live after the last GC"),
    ("heap_committed_mib", "JVM heap committed"),
    ("nonheap_used_mib", "JVM non-heap used"),
    ("nmt_committed_mib", "NMT committed (all JVM)"),
    ("nmt_malloc_mib", "NMT malloc (JVM native)"),
    ("outside_jvm_mib", "RSS − NMT committed (engine, mapped model, libc)"),
]


def slope_per_10min(xs, ys):
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx * 600


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


out = []
out.append("# Soak report\n")
out.append(f"Command: `{command}` (samples every {int(rows[1]['elapsed_s'] - rows[0]['elapsed_s']) if len(rows) > 1 else '?'} s "
           f"into `build/load/soak.csv`; this file is `build/load/soak-report.md`).\n")
dur = rows[-1]["elapsed_s"] if rows else 0
out.append(f"Duration sampled: {dur / 60:.1f} min, {len(rows)} samples. Requests answered: "
           f"{summary.get('completed', '?')} completed streams, {summary.get('refused_429', '?')} answered 429, "
           f"{summary.get('errors', '?')} errors; {summary.get('chunks', '?')} chunks checked; "
           f"time to first token p50 {summary.get('ttft_p50_ms', '?')} ms, p99 {summary.get('ttft_p99_ms', '?')} ms. "
           f"Result of the load checks: **{summary.get('result', '?')}**.\n")

if rows:
    warm = rows[min(len(rows) - 1, len(rows) // 5)]
    last = rows[-1]
    span = [r for r in rows if r["elapsed_s"] >= warm["elapsed_s"]]
    out.append("## Growth after warm-up\n")
    out.append(f"From the end of warm-up (sample at {warm['elapsed_s'] / 60:.1f} min, the first fifth) to the end "
               f"({last['elapsed_s'] / 60:.1f} min); slope = least-squares fit over that span.\n")
    out.append("| series | at warm-up (MiB) | at end (MiB) | min (MiB) | max (MiB) | change (MiB) | slope (MiB per 10 min) |")
    out.append("|---|---|---|---|---|---|---|")
    for key, name in series:
        vals = [r[key] for r in span if r.get(key) is not None]
        if not vals:
            continue
        a, b = warm.get(key), last.get(key)
        change = (b - a) if a is not None and b is not None else None
        sl = slope_per_10min([r["elapsed_s"] for r in span], [r.get(key) for r in span])
        out.append(f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(min(vals))} | {fmt(max(vals))} | {fmt(change)} | {fmt(sl, 2)} |")
    out.append("")
    out.append("## Samples\n")
    out.append("| elapsed (min) | RSS (MiB) | heap used | heap live after GC | heap committed | non-heap used | NMT committed | NMT malloc | tokens generated | requests |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    step = max(1, len(rows) // 30)
    picked = rows[::step]
    if picked[-1] is not rows[-1]:
        picked.append(rows[-1])
    for r in picked:
        out.append(f"| {r['elapsed_s'] / 60:.1f} | {fmt(r['rss_mib'])} | {fmt(r['heap_used_mib'])} | {fmt(r.get('heap_live_after_gc_mib'))} | {fmt(r['heap_committed_mib'])} "
                   f"| {fmt(r['nonheap_used_mib'])} | {fmt(r['nmt_committed_mib'])} | {fmt(r['nmt_malloc_mib'])} "
                   f"| {fmt(r['tokens_generated'], 0)} | {fmt(r['requests'], 0)} |")
    out.append("")

with open(out_path, "w") as f:
    f.write("\n".join(out) + "\n")
print("\n".join(out))
