#!/usr/bin/env python3
"""Prints the GPU check's table: per benchmark case, our time, each baseline's time from the same run, the
ratio (baseline / ours, > 1 means we are faster), achieved GB/s and the fraction of the bandwidth floor."""
import json
import sys


def main(path):
    ours, base, acc = {}, {}, []
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print(f"no results file {path}")
        return
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        key = (r["op"], r["rows"], r["cols"], round(float(r["density"]), 4), r["dtype"], int(r.get("t", 0)))
        if "error_ratio" in r:
            acc.append((key, r.get("accuracy_of", "?"), r["error_ratio"]))
        elif "baseline" in r:
            base.setdefault(key, []).append((r["baseline"], r["time_ms"]))
        else:
            ours[key] = r
    hdr = f"{'op':<12} {'shape':<11} {'dens':>5} {'dtype':<10} {'T':>5} {'ours ms':>9} {'GB/s':>7} {'floor%':>7}  {'baseline':<22} {'base ms':>9} {'ratio':>6}"
    print(hdr)
    print("-" * len(hdr))
    for key in sorted(ours):
        r = ours[key]
        op, rows, cols, d, dtype, t = key
        floor = 100.0 * r["floor_ms"] / r["time_ms"] if r["time_ms"] > 0 else 0.0
        bl = base.get(key, [("(none)", float("nan"))])
        for i, (bname, bms) in enumerate(bl):
            lead = f"{op:<12} {rows}x{cols:<6} {d:>5.2f} {dtype:<10} {t:>5} {r['time_ms']:>9.4f} {r['gbps']:>7.1f} {floor:>6.1f}%" if i == 0 else " " * 69
            print(f"{lead}  {bname:<22} {bms:>9.4f} {bms / r['time_ms']:>6.2f}")
    # Same-run A/B: our other kernels or paths timed with a library switch (labels "our ... (SLR_X=y)"). A ratio > 1
    # means the default path is faster than the switched one on that case; < 1 means the switch's path won there.
    ab = {}
    for key, bl in base.items():
        if key not in ours:
            continue
        for bname, bms in bl:
            # Only other ways to do the same call: not floors ("... floor"), parts of it ("... alone"), or a
            # kernel timed by itself (the near-identity step) (2026-11-29: they were averaged in as if paths).
            not_a_path = any(w in bname for w in ("floor", "alone", "near-identity step"))
            if bname.startswith("our ") and not not_a_path and ours[key]["time_ms"] > 0:
                ab.setdefault((key[0], bname), []).append((key, bms / ours[key]["time_ms"]))
    if ab:
        print()
        print("A/B against our other kernels and paths (switched / default; > 1: the default path is faster)")
        for (op, bname), rows in sorted(ab.items()):
            ratios = [x for _, x in rows]
            geo = 1.0
            for x in ratios:
                geo *= x
            geo **= 1.0 / len(ratios)
            losers = [f"{k[1]}x{k[2]} d{k[3]} {k[4]} T{k[5]}: {x:.2f}" for k, x in rows if x < 1.0]
            print(f"{op:<16} {bname:<52} geomean {geo:5.2f}  range {min(ratios):.2f}-{max(ratios):.2f}  cases {len(ratios)}")
            for line in losers:
                print(f"{'':<18}slower on {line}")
    if acc:
        print()
        print("accuracy: rank-r error / optimal rank-r error (1 = optimal)")
        for key, who, ratio in sorted(acc, key=lambda x: (x[0], x[1])):
            op, rows, cols, d, dtype, t = key
            print(f"{op:<12} {rows}x{cols:<6} {dtype:<5} r={t:<4} {who:<40} {ratio:.5f}")
    if ours:
        print(f"device: {next(iter(ours.values()))['device']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.jsonl")
