"""Routing benchmark: decisions per second on one core, p99 per decision, index build, memory.

Targets (issue 3): ≥ 2,000 decisions/s, index built in < 2 s, < 150 MB. The index is built in
a fresh interpreter so that its time includes importing the gazetteer, and its memory is that
process's peak RSS. The decisions run over the generated evaluation set (tipline.routing.cases),
which also gives the precision of auto-routed decisions and their share.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

BUILD = """
import json, resource, time
t = time.perf_counter()
from tipline.routing.places import gazetteer
gaz = gazetteer()
build = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"build_s": build, "rss_mb": rss, "keys": len(gaz.index)}))
"""


def main() -> None:
    build = json.loads(
        subprocess.run(
            [sys.executable, "-c", BUILD], capture_output=True, text=True, check=True
        ).stdout
    )
    from tipline.routing.cases import evaluate, generate
    from tipline.routing.places import gazetteer
    from tipline.routing.router import route_text

    gazetteer()
    cases = generate(5000, seed=11)
    for case in cases[:200]:  # warm-up
        route_text(case.text, case.oa)
    timings: list[float] = []
    start = time.perf_counter()
    for case in cases:
        t0 = time.perf_counter()
        route_text(case.text, case.oa)
        timings.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    timings.sort()
    score, _wrong = evaluate(generate(2400))
    result = {
        "benchmark": "routing",
        "decisions": len(cases),
        "decisions_per_s": round(len(cases) / elapsed),
        "p50_ms": round(timings[len(timings) // 2] * 1000, 3),
        "p99_ms": round(timings[int(len(timings) * 0.99)] * 1000, 3),
        "index_build_s": round(build["build_s"], 3),
        "index_rss_mb": round(build["rss_mb"], 1),
        "index_keys": build["keys"],
        "generated_cases": score.cases,
        "auto_precision": round(score.precision, 4),
        "auto_share": round(score.auto_share, 4),
        # Against the target of 2,000 decisions/s.
        "ratio": round(len(cases) / elapsed / 2000, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
