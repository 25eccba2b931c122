"""Collect the benchmarks' last JSON lines into one table of figures, targets and ratios.

    python benchmarks/report.py --list                 # the benchmark scripts, for make bench
    python benchmarks/report.py OUTDIR [--out docs/benchmarks.md] [--note TEXT]

``make bench`` runs every script that ``--list`` names, keeping each one's output, exit code
and run time in OUTDIR (NAME.out, NAME.rc, NAME.seconds), then calls this to write the
table. The targets live here, in TARGETS, one list per benchmark: the scripts print figures,
this file judges them. A benchmark that crashed or printed no JSON still gets its row, marked
failed; one that exists but is missing from TARGETS gets its figures listed without targets.
Sections written by hand in the file it replaces (``## …`` headings above the generated part)
are kept: :func:`runs_by_hand`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"bare_app.py", "report.py"}  # a baseline app and this file


@dataclass(frozen=True)
class Figure:
    key: str  # a dotted path into the benchmark's JSON
    label: str
    unit: str = ""
    op: str | None = None  # ">=" or "<=" against target; None: reported, not judged
    target: float | None = None


# Targets from the issues (also stated in each script's docstring).
TARGETS: dict[str, list[Figure]] = {
    "audit": [
        Figure("verify_events_per_s", "chain verification", "events/s", ">=", 200_000),
        Figure("event_added_p95_ms", "audit event added to an action, p95", "ms", "<=", 1.0),
        Figure("ratio", "verification ÷ bare chain hashing (same run)", "×"),
    ],
    "audit_ceiling": [
        Figure("ceiling_events_per_s", "PostgreSQL: audited transactions/s, best of 1-8 "
               "connections (one head row)", "tx/s"),
        Figure("tips_per_s_ceiling", "tips/s the chain allows, one event a transaction (3 "
               "audit events a tip)", "tips/s"),
        Figure("tips_per_s_ceiling_batched", "tips/s the chain allows with batched appends "
               "(audit.deferred, as the pipeline appends)", "tips/s", ">=", 200),
        Figure("scaling", "audited tx/s at 8 connections ÷ at 1 (1.0: the head binds)", "×"),
        Figure("plain_scaling", "same for a plain insert (baseline, same run)", "×"),
        Figure("ratio", "audited ÷ plain insert tx/s at 8 connections", "×"),
    ],
    "e2e": [
        Figure("postgresql.lock_waits.max_session_lock_wait_pct", "postgresql: the most any "
               "session waited on a lock, % of its samples (the target is for 4 workers: "
               "`e2e.py --workers 4`)", "%", "<=", 5),
        Figure("postgresql.lock_waits.mean_session_lock_wait_pct", "postgresql: mean over "
               "sessions of the same", "%"),
        Figure("floor.floor_ms_per_tip", "the floor: CPU per tip of bare crypto, raw rows, "
               "one Zalo POST and a bare Flask request (baseline)", "ms"),
        *[fig for db in ("sqlite", "postgresql") for fig in (
            Figure(f"{db}.p95_ms", f"{db}: webhook sent → tip in the inbox, p95 at 200/s",
                   "ms", "<=", 1000),
            Figure(f"{db}.ack_p95_ms", f"{db}: webhook sent → acknowledgement delivered, p95",
                   "ms", "<=", 2000),
            Figure(f"{db}.lost", f"{db}: tips never acknowledged", "", "<=", 0),
            Figure(f"{db}.acknowledged_twice", f"{db}: tips acknowledged twice", "", "<=", 0),
            Figure(f"{db}.rate_achieved", f"{db}: tips sent per second (2 workers)", "tips/s",
                   ">=", 198),
            Figure(f"{db}.cpu_ms_per_tip_total", f"{db}: CPU per tip, every process until "
                   "acknowledged", "ms", "<=", 10),
            Figure(f"{db}.cpu_vs_floor", f"{db}: CPU per tip ÷ the floor", "×"),
            Figure(f"{db}.idle_pct_of_core", f"{db}: idle CPU, every process", "% of a core",
                   "<=", 2),
            Figure(f"{db}.first_tip.sent_to_ack_ms", f"{db}: first tip after start, "
                   "sent → acknowledged", "ms"),
            Figure(f"{db}.light_load.p95_ms", f"{db}: sent → inbox p95 at 10 tips/s", "ms"),
            Figure(f"{db}.webhook_p95_ms", f"{db}: webhook round-trip p95", "ms"),
            Figure(f"{db}.stages.stored_to_expanded.p95_ms", f"{db}: stage p95: stored → "
                   "expanded", "ms"),
            Figure(f"{db}.stages.expanded_to_dispatched.p95_ms", f"{db}: stage p95: expanded → "
                   "dispatched", "ms"),
            # With --compare TREE: the same run on the other checkout first (the before).
            Figure(f"{db}_before.cpu_ms_per_tip_total", f"{db}: before — CPU per tip "
                   "(--compare tree, same run)", "ms"),
            Figure(f"{db}_before.idle_pct_of_core", f"{db}: before — idle CPU", "% of a core"),
            Figure(f"{db}_before.first_tip.sent_to_ack_ms", f"{db}: before — first tip after "
                   "start, sent → acknowledged", "ms"),
            Figure(f"{db}_after_vs_before.cpu_ms_per_tip_total", f"{db}: CPU per tip, after ÷ "
                   "before", "×"),
            Figure(f"{db}_after_vs_before.ack_p95_ms", f"{db}: ack p95, after ÷ before", "×"),
        )],
    ],
    "intake": [
        Figure("intake_rps", "signed webhooks stored, max", "req/s"),
        Figure("baseline_rps", "bare Flask endpoint, max (baseline)", "req/s"),
        Figure("ratio", "intake ÷ bare Flask", "×", ">=", 0.6),
        Figure("p99_ms", "intake p99 at half its maximum rate", "ms", "<=", 50),
        Figure("non_2xx", "failed or non-2xx responses", "", "<=", 0),
    ],
    "routing": [
        Figure("decisions_per_s", "routing decisions, one core (CPU time)", "decisions/s", ">=",
               2000),
        Figure("decisions_per_s_wall", "routing decisions, one core (wall clock)", "decisions/s"),
        Figure("p99_ms", "one decision, p99", "ms"),
        Figure("index_build_s", "place index built (fresh interpreter, CPU)", "s", "<=", 2.0),
        Figure("index_rss_mb", "place index, peak memory", "MB", "<=", 150),
        Figure("precision", "precision of auto-routed decisions (informant-style set)", "",
               ">=", 0.995),
        Figure("must_not_route_routed", "must-not-route tips routed", "", "<=", 0.01),
        Figure("recall", "recall of tips that have an answer", "", ">=", 0.85),
        Figure("typo_suggested", "typo tips whose commune is suggested", ""),
        Figure("ratio", "decisions/s ÷ 2,000 target", "×"),
    ],
    "triage": [
        Figure("inbox_officer.p95_ms", "officer's inbox, p95 (100,000 tips)", "ms", "<=", 150),
        Figure("inbox_commander.p95_ms", "commander's inbox, p95", "ms", "<=", 150),
        Figure("tip_open.p95_ms", "tip open (decrypt + audit), p95", "ms", "<=", 50),
        Figure("bare.p95_ms", "bare page behind the same login, p95 (baseline)", "ms"),
        Figure("ratio", "inbox p95 ÷ bare page p95", "×"),
    ],
}


# What the end-to-end figures count (benchmarks/e2e.py's docstring has the details).
COUNTED = [
    "**What e2e counts.** Latency runs from the moment each webhook was *sent* (not from its "
    "200), to the tip in its unit's inbox (a 50 ms poll) and to the acknowledgement as the "
    "simulated Zalo recorded it (its own clock). CPU is user + system time from /proc of every "
    "process of the stack — gunicorn's master and workers, the `tipline worker` processes, "
    "Redis and the key store's redis-server, and on PostgreSQL the postmaster and every "
    "backend — from the first webhook until every tip is acknowledged, divided by the tips "
    "sent; the simulated Zalo runs in its own process and its CPU is left out, as are the load "
    "generator and the poller (its CPU is printed apart). *lost* = never acknowledged, "
    "*acknowledged twice* from Zalo's record. Idle = the same processes' CPU over 10 s with "
    "nothing to do, once every tip is acknowledged. The baseline of the same run is the "
    "*floor* (benchmarks/_floor.py): the crypto, raw-SQL rows, one Zalo POST's client side "
    "and a bare Flask request a tip cannot avoid. When a run ends with tips unacknowledged, "
    "its CPU per tip is a lower bound (`cpu_complete: false`) and idle is not measured.",
]


def benchmark_scripts() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py")
                  if p.name not in NOT_BENCHMARKS and not p.name.startswith("_"))


def last_json(text: str) -> dict[str, Any] | None:
    """The last non-empty line, when it is a JSON object (the CONTRACT's last line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def lookup(data: dict[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def machine() -> dict[str, str]:
    cpu, ram = platform.processor() or "?", "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    postgres = "not installed"
    for tool in ("postgres", "psql"):
        if path := shutil.which(tool):
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout.strip()
            found = re.search(r"\d+(\.\d+)+", out)
            postgres = (found.group(0) if found else out) + ("" if tool == "postgres"
                                                             else " (client only)")
            break
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres,
    }


def rows_for(name: str, outdir: Path) -> list[list[str]]:
    """The table rows of one benchmark: its run, then one per figure."""
    out_file, rc_file = outdir / f"{name}.out", outdir / f"{name}.rc"
    seconds_file = outdir / f"{name}.seconds"
    text = out_file.read_text(errors="replace") if out_file.exists() else ""
    rc = rc_file.read_text().strip() if rc_file.exists() else "?"
    seconds = seconds_file.read_text().strip() if seconds_file.exists() else "?"
    data = last_json(text)
    if data is None:
        tail = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "no output")
        return [[name, "**FAILED**", f"exit {rc} after {seconds} s; no JSON last line: "
                 f"`{tail[:150].replace('|', '/')}`", "—", "—", "✗"]]
    database = f"; {data['database']}" if "database" in data else ""
    rows = [[name, "run", f"exit {rc}, {seconds} s{database}", "—", "—",
             "✓" if rc == "0" else "✗"]]
    figures = TARGETS.get(name) or [Figure(k, k) for k, v in data.items()
                                    if isinstance(v, int | float) and not isinstance(v, bool)]
    for fig in figures:
        value = lookup(data, fig.key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            if fig.op is not None:  # an unjudged figure may be absent (e2e without --compare)
                rows.append([name, fig.label, "missing", _target(fig), "—", "✗"])
            continue
        measured = f"{number(float(value))} {fig.unit}".strip()
        if fig.key == "tips_visible" and "tips_sent" in data:
            measured = f"{value:,} of {data['tips_sent']:,}"
        if fig.op is None or fig.target is None:
            rows.append([name, fig.label, measured, "—", "—", ""])
            continue
        met = value >= fig.target if fig.op == ">=" else value <= fig.target
        vs = f"{value / fig.target:.2f}×" if fig.target else "—"
        rows.append([name, fig.label, measured, _target(fig), vs, "✓" if met else "✗"])
    return rows


def _target(fig: Figure) -> str:
    if fig.op is None or fig.target is None:
        return "—"
    return f"{'≥' if fig.op == '>=' else '≤'} {number(fig.target)} {fig.unit}".strip()


def runs_by_hand(existing: str) -> list[str]:
    """The sections written by hand in an earlier docs/benchmarks.md (``## …`` headings between
    the header and the generated tables: sessions' profiles, before/after pairs, what was left
    and why), which :func:`render` keeps."""
    lines = existing.splitlines()
    generated = COUNTED[0][:20]
    end = next((i for i, line in enumerate(lines) if line.startswith(generated)), len(lines))
    start = next((i for i, line in enumerate(lines[:end]) if line.startswith("## ")), end)
    kept = lines[start:end]
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def render(outdir: Path, note: str | None, kept: list[str] | None = None) -> str:
    info = machine()
    names = [p.stem for p in benchmark_scripts()]
    names += sorted({p.stem for p in outdir.glob("*.out")} - set(names))
    load = (outdir / "loadavg.start").read_text().split()[:3] \
        if (outdir / "loadavg.start").exists() else []
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Each script in "
        "benchmarks/ prints its figures as its last line (JSON); the targets are in "
        "benchmarks/report.py. *vs target* is measured ÷ target; the ratios against a "
        "baseline measured in the same run are the rows marked ×.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
    ]
    if load:
        lines += [f"Load average when the run started: {' '.join(load)}; when it ended: "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (on {info['cores']} cores)."]
    if kept:
        lines += ["", *kept]
    lines += ["", *COUNTED]
    if note:
        lines += ["", note]
    lines += [
        "",
        "| benchmark | figure | measured | target | vs target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        lines += ["| " + " | ".join(row) + " |" for row in rows_for(name, outdir)]
    lines += ["", "<details><summary>Last lines as printed</summary>", "", "```"]
    for name in names:
        out_file = outdir / f"{name}.out"
        data = last_json(out_file.read_text(errors="replace")) if out_file.exists() else None
        lines.append(json.dumps(data, ensure_ascii=False) if data else f"{name}: (none)")
    lines += ["```", "", "</details>", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, nargs="?")
    parser.add_argument("--list", action="store_true", help="print the benchmark scripts")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    parser.add_argument("--note", default=os.environ.get("BENCH_NOTE") or None)
    args = parser.parse_args()
    if args.list:
        print("\n".join(str(p.relative_to(HERE.parent)) for p in benchmark_scripts()))
        return 0
    if args.outdir is None:
        parser.error("OUTDIR is required")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = runs_by_hand(args.out.read_text()) if args.out.exists() else []
    args.out.write_text(render(args.outdir, args.note, kept))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
