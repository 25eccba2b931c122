"""`make bench` rewrites docs/benchmarks.md from its run (benchmarks/report.py): what sessions
wrote by hand about their runs (profiles, before/after pairs, what was left and why) is kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def report(outdir: Path, out: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), str(outdir), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


def test_make_bench_keeps_the_runs_written_by_hand(tmp_path: Path) -> None:
    runs = tmp_path / "bench"
    runs.mkdir()
    (runs / "intake.out").write_text('{"benchmark": "intake", "ratio": 0.25}\n')
    (runs / "intake.rc").write_text("1\n")
    out = tmp_path / "benchmarks.md"
    report(runs, out)
    written = out.read_text()
    by_hand = "## Session 9 runs\n\nIdle: 5.67 % before, 3.64 % after, same run.\n"
    out.write_text(written.replace("**What e2e counts.**", by_hand + "\n**What e2e counts.**"))
    report(runs, out)
    again = out.read_text()
    assert by_hand in again
    assert again.count("## Session 9 runs") == 1
    assert again.index("## Session 9 runs") < again.index("| benchmark | figure |")
    report(runs, out)  # and the next run too
    assert out.read_text().count(by_hand) == 1
