#!/usr/bin/env python3
"""Tables of medians (and min-max spread) from bench/compare.sh's JSON results,
and a cost model fitted to them: server CPU = a µs per command + b µs per delivery.

    python3 bench/summarize.py DIR

Each file is DIR/<scenario>.<target>.<rep>.json, one syncroom-bench --json run.
"""
import glob
import json
import os
import statistics
import sys


def load(directory):
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        scenario, target, _rep, _ = os.path.basename(path).rsplit(".", 3)
        try:
            with open(path) as f:
                runs.setdefault((scenario, target), []).append(json.load(f))
        except (OSError, ValueError):
            print(f"skipping unreadable {path}", file=sys.stderr)
    return runs


METRICS = [
    ("p50 ms", lambda r: r["latency_us"]["p50"] / 1e3),
    ("p99 ms", lambda r: r["latency_us"]["p99"] / 1e3),
    ("CPU µs/delivery", lambda r: (r["server"]["cpu_us_per_delivery"] or {}).get("total")),
    ("CPU µs/command", lambda r: r["server"].get("cpu_us_per_command")),
    ("deliveries/s", lambda r: r["publish"]["deliveries_per_s"]),
    ("RSS KiB/listener", lambda r: (r["server"]["rss_per_listener_bytes"] or 0) / 1024),
    ("CPU µs/join (through settle)", lambda r: r["connect"].get("server_cpu_us_per_join")),
    ("Redis commands/command", lambda r: (r.get("redis") or {}).get("commands_per_room_command")),
    ("Redis CPU µs/command", lambda r: (r.get("redis") or {}).get("cpu_us_per_command")),
    ("connects/s", lambda r: r["connect"]["listeners_per_s"]),
    ("round trip p99 ms", lambda r: r["command_round_trip_us"]["p99"] / 1e3),
]


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, "–"
    med = statistics.median(values)
    fmt = (lambda v: f"{v:.0f}") if med >= 100 else (lambda v: f"{v:.2f}" if med < 10 else f"{v:.1f}")
    if len(values) == 1:
        return med, fmt(med)
    return med, f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


# Every server compare.sh may run, in table order, with its name in the tables.
KNOWN_TARGETS = [("syncroom", "syncroom"), ("syncroom-1t", "syncroom --threads 1"),
                 ("syncroom-base", "syncroom (BASE)"), ("syncroom-base-1t", "syncroom (BASE) --threads 1"),
                 ("nchan", "nchan")]
# Ratios in the tables: (numerator, denominator, heading), where both ran.
KNOWN_RATIOS = [("syncroom", "nchan", "syncroom ÷ nchan"), ("syncroom-1t", "nchan", "--threads 1 ÷ nchan"),
                ("syncroom", "syncroom-base", "new ÷ BASE"), ("syncroom-1t", "syncroom-base-1t", "new ÷ BASE, --threads 1")]
TARGETS = KNOWN_TARGETS
RATIOS = KNOWN_RATIOS
ORDER = ["1x1k", "1x10k", "100x10k", "1x19k", "1000x10k", "chat200", "join10k", "redis100x10k"]
# Scenarios the cost model is fitted to: one node, below saturation.
FIT = ["1x1k", "1x10k", "100x10k", "1x19k", "1000x10k", "chat200"]


def fit(runs, target):
    """Least squares of publish CPU = a * commands + b * deliveries over every run
    of the FIT scenarios; answers (a, b) in µs, or None."""
    rows = []
    for scenario in FIT:
        for r in runs.get((scenario, target), []):
            cpu = (r["server"].get("publish_cpu") or {}).get("total_us")
            if cpu is not None:
                rows.append((r["commands"], r["deliveries"]["delivered"], cpu))
    if len(rows) < 2:
        return None
    sxx = sum(c * c for c, _, _ in rows)
    sxy = sum(c * d for c, d, _ in rows)
    syy = sum(d * d for _, d, _ in rows)
    sxz = sum(c * z for c, _, z in rows)
    syz = sum(d * z for _, d, z in rows)
    det = sxx * syy - sxy * sxy
    if det == 0:
        return None
    return (syy * sxz - sxy * syz) / det, (sxx * syz - sxy * sxz) / det


def main():
    directory = sys.argv[1]
    runs = load(directory)
    # Only the servers that ran (compare.sh's TARGETS), and the ratios between them.
    global TARGETS, RATIOS
    ran = {t for _, t in runs}
    TARGETS = [(t, name) for t, name in KNOWN_TARGETS if t in ran]
    RATIOS = [r for r in KNOWN_RATIOS if r[0] in ran and r[1] in ran]
    scenarios = sorted({s for s, _ in runs if not s.startswith("sat-")},
                       key=lambda s: ORDER.index(s) if s in ORDER else 99)
    print("\n| scenario | metric | " + " | ".join(name for _, name in TARGETS)
          + "".join(f" | {heading}" for _, _, heading in RATIOS) + " |")
    print("| --- | --- |" + " --- |" * (len(TARGETS) + len(RATIOS)))
    for scenario in scenarios:
        for name, get in METRICS:
            meds, cells = {}, []
            for target, _ in TARGETS:
                med, text = spread([get(r) for r in runs.get((scenario, target), [])])
                meds[target] = med
                cells.append(text)
            ratios = []
            for top, bottom, _ in RATIOS:
                a, b = meds[top], meds[bottom]
                ratios.append(f"{a / b:.2f}" if a is not None and b else "–")
            print(f"| {scenario} | {name} | " + " | ".join(cells + ratios) + " |")
        lost = [str(sum(r["deliveries"]["lost"] + r["deliveries"]["duplicated"]
                        for r in runs.get((scenario, target), []))) for target, _ in TARGETS]
        print(f"| {scenario} | lost + duplicated (all runs) | " + " | ".join(lost) + " |" * (len(RATIOS) + 1))

    print("\nCost model (least squares over every run of " + ", ".join(FIT)
          + "): server CPU over the publish window = a per command + b per delivery\n")
    print("| server | µs per command (a) | µs per delivery (b) | µs per command of 10 listeners | of 100 | of 1,000 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for target, name in TARGETS:
        model = fit(runs, target)
        if model:
            a, b = model
            print(f"| {name} | {a:.0f} | {b:.2f} | {a + 10 * b:.0f} | {a + 100 * b:.0f} | {a + 1000 * b:.0f} |")

    sat = sorted({s for s, _ in runs if s.startswith("sat-")}, key=lambda s: -int(s[4:]))
    if sat:
        print("\nSaturation (10 rooms × 1,000 listeners, one command every interval in turn; "
              "medians of deliveries/s and p99 ms):\n")
        print("| interval | " + " | ".join(f"{name} deliveries/s | {name} p99 ms" for _, name in TARGETS) + " |")
        print("| --- |" + " --- | --- |" * len(TARGETS))
        best = {}
        for scenario in sat:
            row = [f"{scenario[4:]} ms"]
            for target, _ in TARGETS:
                rs = runs.get((scenario, target), [])
                rate, rate_text = spread([r["publish"]["deliveries_per_s"] for r in rs])
                p99, p99_text = spread([r["latency_us"]["p99"] / 1e3 for r in rs])
                ok = rs and all(r["ok"] for r in rs)
                if ok and p99 is not None and p99 <= 100 and rate > best.get(target, 0):
                    best[target] = rate
                row += [rate_text, p99_text]
            print("| " + " | ".join(row) + " |")
        print("\nBest deliveries/s with p99 ≤ 100 ms and nothing lost: "
              + ", ".join(f"{name} {best.get(t, 0):.0f}" for t, name in TARGETS))


if __name__ == "__main__":
    main()
