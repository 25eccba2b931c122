"""Cleaning evidence in the sandbox: seconds per file, by kind.

Each sample (made here, as tests/media_samples.py makes them) goes through
``tipline.media.clean.clean``: one fresh bubblewrap sandbox per file, as the media worker
runs it. Baseline, same run: starting an empty sandbox (``true``), the fixed cost of the
isolation. Reported: the median of ``--runs`` runs per kind, in seconds. No target: a Word
file's cost is LibreOffice's start, which the worker pays per file on purpose (a fresh process
each time, nothing shared between informants' files).

Last line: one JSON object; ``ratio`` = the slowest kind's median / the empty sandbox's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import media_samples as samples  # noqa: E402
from tipline.media import sandbox  # noqa: E402
from tipline.media.clean import clean  # noqa: E402


def timed(action: Callable[[], object], runs: int) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return round(statistics.median(seconds), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = {
            "jpeg": samples.jpeg_with_gps((1600, 1200)),
            "amr_voice_10s": samples.amr_voice_note(10),
            "mp4_10s_640x480": samples.mp4_with_metadata(work, seconds=10, size="640x480"),
            "pdf_1_page": samples.pdf_with_metadata(),
            "docx": samples.docx_with_creator(),
            "xlsx": samples.xlsx_with_creator(),
        }
        empty = timed(lambda: sandbox.run(["true"], b""), args.runs)
        results = {}
        for name, data in inputs.items():
            results[name] = timed(lambda data=data: clean(data), args.runs)
            print(f"{name:>18}: {results[name]:.3f} s", flush=True)
    print(f"{'empty sandbox':>18}: {empty:.3f} s")
    print(json.dumps({"seconds": results, "empty_sandbox": empty,
                      "ratio": round(max(results.values()) / empty, 1)}))


if __name__ == "__main__":
    main()
