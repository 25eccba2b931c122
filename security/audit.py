"""`make audit`: bandit's totals, pip-audit over our dependencies, Wapiti against the demo.

    python security/audit.py --wapiti .venv-audit/bin/wapiti [--report docs/security-scan.md]

Writes the report (Markdown) and exits non-zero when Wapiti found anything of medium level or
above that security/allowlist.toml does not explain, when pip-audit reported an advisory not
explained there either, or when a scan could not run. A vulnerability database that cannot be
reached is said so, loudly, in the output and the report; it fails the run only with
``--require-deps-audit`` (this machine reaches package downloads, not advisory services).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from deps import DepsResult, run_pip_audit
from webscan import (
    EXCLUDED_PATHS,
    MODULES,
    OFFICER,
    TIPS,
    Finding,
    ScanResult,
    demo,
    free_port,
    last_traceback,
    officer_cookies,
    run_wapiti,
    seed_tips,
    wapiti_version,
)

ROOT = Path(__file__).resolve().parent.parent
LEVELS = {0: "info", 1: "low", 2: "medium", 3: "high", 4: "critical"}
FAIL_AT = 2  # medium and above must be explained


@dataclass
class Verdict:
    finding: Finding
    entry: int | None  # index into the allow-list's findings, when one explains it

    @property
    def blocking(self) -> bool:
        return self.finding.level >= FAIL_AT and self.entry is None


def load_allowlist(path: Path) -> dict[str, list[dict[str, Any]]]:
    data = tomllib.loads(path.read_text())
    for entry in data.get("finding", []) + data.get("advisory", []):
        if not str(entry.get("reason", "")).strip():
            raise SystemExit(f"{path}: every entry needs a reason: {entry}")
    return {"finding": data.get("finding", []), "advisory": data.get("advisory", [])}


def explain(finding: Finding, entries: list[dict[str, Any]]) -> int | None:
    for i, entry in enumerate(entries):
        if entry["category"] != finding.category:
            continue
        paths = entry.get("path", "*")
        if not any(fnmatch.fnmatchcase(finding.path, glob)
                   for glob in ([paths] if isinstance(paths, str) else paths)):
            continue
        if entry.get("scan") not in (None, finding.scan):
            continue
        if entry.get("parameter") not in (None, finding.parameter):
            continue
        return i
    return None


def bandit_totals() -> dict[str, Any]:
    """bandit over the packages with the project's configuration (as `make lint` runs it)."""
    bandit = Path(sys.executable).with_name("bandit")
    proc = subprocess.run(
        [str(bandit), "-c", "pyproject.toml", "-r", "tipline", "keys", "triage", "-f", "json",
         "-q"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": (proc.stderr or proc.stdout)[-500:]}
    totals = data.get("metrics", {}).get("_totals", {})
    return {
        "issues": len(data.get("results", [])),
        "nosec": int(totals.get("skipped_tests", 0)) + int(totals.get("nosec", 0)),
        "loc": int(totals.get("loc", 0)),
    }


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; Python {platform.python_version()}; {platform.system()} {platform.release()}"


def served_statuses(log: Path) -> dict[str, int]:
    """HTTP statuses the demo answered during the run (its access log), by class."""
    counts: dict[str, int] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for status in re.findall(r'^\[[^\]]*\] "[A-Z]+ \S*" (\d{3}) ', text, re.MULTILINE):
        key = status if status in ("429", "400", "403", "404") else f"{status[0]}xx"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def cell(text: str, size: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= size else text[: size - 1] + "…"


def render(
    *, when: datetime, bandit: dict[str, Any], deps: DepsResult, dep_blocking: list[str],
    scans: list[ScanResult], verdicts: list[Verdict], allow: dict[str, list[dict[str, Any]]],
    wapiti: str, problems: list[str], seeded: int, statuses: dict[str, int],
) -> str:
    ok = not problems and not dep_blocking and not any(v.blocking for v in verdicts)
    out = [
        "# Security scan",
        "",
        f"Written by `make audit` on {when:%Y-%m-%d %H:%M} UTC ({machine()}). Do not edit: "
        "run `make audit` again. Accepted findings and their reasons: "
        "[security/allowlist.toml](../security/allowlist.toml).",
        "",
        f"**Result: {'PASS' if ok else 'FAIL'}**" + ("" if deps.reachable else
        " — dependencies NOT audited: no vulnerability database is reachable from this machine"),
        "",
        "| check | tool | result |",
        "| --- | --- | --- |",
    ]
    if "error" in bandit:
        out.append(f"| static analysis of tipline/, keys/, triage/ | bandit | error: "
                   f"{cell(bandit['error'])} |")
    else:
        out.append(
            f"| static analysis of tipline/, keys/, triage/ | bandit {version('bandit')} | "
            f"{bandit['issues']} issues in {bandit['loc']:,} lines; {bandit['nosec']} marked "
            "`# nosec BXXX` with the reason on the line; B404 skipped ([tool.bandit]) |")
    if deps.reachable:
        dep_text = (f"{deps.audited} packages audited ({deps.source} source); "
                    f"{len(deps.advisories)} advisories, {len(dep_blocking)} unexplained")
    else:
        dep_text = ("**not audited**: " + "; ".join(
            f"{a.source}: {a.note}" for a in deps.attempts))
    out.append(f"| installed dependencies (.venv) | pip-audit {version('pip-audit')} | "
               f"{dep_text} |")
    for scan in scans:
        mine = [v for v in verdicts if v.finding.scan == scan.name]
        counts = ", ".join(
            f"{sum(v.finding.level == lvl for v in mine)} {LEVELS[lvl]}" for lvl in (4, 3, 2, 1))
        blocking = sum(v.blocking for v in mine)
        out.append(
            f"| web, {scan.name} | Wapiti {wapiti} | {scan.crawled} pages crawled "
            f"({scan.tip_pages} tip pages) in {scan.seconds:.0f} s; {counts}; "
            f"{'all medium and above explained' if not blocking else f'**{blocking} unexplained**'}"
            f"{'' if scan.returncode == 0 else f'; exit code {scan.returncode}'} |")
    for problem in problems:
        out.append(f"| run | — | **{cell(problem, 400)}** |")

    out += [
        "",
        "## Dependencies (pip-audit)",
        "",
        "pip-audit checks each installed distribution of the project's virtualenv (the editable "
        "project itself skipped) against a vulnerability service. It is tried with each source "
        "in turn; a source counts only when it audited at least one package, because pip-audit "
        "reports \"No known vulnerabilities found\" even when it could audit nothing.",
        "",
        "| source | audited | skipped | why nothing was audited |",
        "| --- | --- | --- | --- |",
    ]
    for attempt in deps.attempts:
        out.append(f"| {attempt.source} | {attempt.audited} | {attempt.skipped} | "
                   f"{cell(attempt.note or '—', 300)} |")
    if deps.advisories:
        out += ["", "| package | version | advisory | fixed in | status |",
                "| --- | --- | --- | --- | --- |"]
        for adv in deps.advisories:
            status = "UNEXPLAINED" if adv.id in dep_blocking else "explained in allowlist"
            out.append(f"| {adv.package} | {adv.version} | {adv.id} "
                       f"{', '.join(adv.aliases)} | {', '.join(adv.fix_versions) or '—'} | "
                       f"{status} |")
    if not deps.reachable:
        out += [
            "",
            "**Nothing was audited here.** This machine reaches the package index for "
            "downloads only: the JSON API that pip-audit's `pypi` source reads answers 404, and "
            "the OSV service does not resolve. Run `make audit` where either is reachable "
            "(pip-audit uses the first source that answers), or audit the pinned set elsewhere "
            "with `pip freeze | pip-audit -r /dev/stdin`.",
        ]

    out += [
        "",
        "## Web scan (Wapiti)",
        "",
        "`tipline demo` (web with the simulator, worker, embedded Redis and SQLite) on loopback "
        f"with a fresh data dir; {seeded} of {len(TIPS)} tips sent as signed webhooks to "
        "Công an xã Lương Thế Trân's OA were dispatched and acknowledged before the scans.",
        "",
        "- **anonymous**: from `/`, `/login`, `/bao-tin`, `/tra-cuu`, `/healthz`, no cookie.",
        f"- **officer**: the demo's `{OFFICER}`, logged in through the real form (password + "
        "TOTP via pyotp); Wapiti starts from that session's cookies (`-c`, a JSON cookie "
        "file) with the same User-Agent, from `/triage/`.",
        f"- modules: `{MODULES}` (why the others are left out: security/webscan.py).",
        f"- excluded: {', '.join(f'`{p}`' for p in EXCLUDED_PATHS)} (the simulator is "
        "demo-only; logout would end the officer's session).",
        "- the demo's answers to both scans (its access log): "
        + (", ".join(f"{n:,} × {code}" for code, n in statuses.items()) or "none logged")
        + ". A 5xx would be a crash; 429s are the rate limits on login, recovery and the "
        "web forms (triage/auth.py, tipline/public/web_form.py), which stop most of Wapiti's "
        "attack "
        "requests there: those forms are attacked only up to their limits.",
        "- not reachable by a crawler: `POST /zalo/webhook` takes signed JSON only (its hostile "
        "inputs are tests/hostile/); `/bao-tin` demands a proof of work, so Wapiti's payloads "
        "stop at that check.",
        "",
        "| scan | level | category | request | parameter | module | status |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in sorted(verdicts, key=lambda v: (-v.finding.level, v.finding.scan,
                                             v.finding.category, v.finding.path)):
        f = v.finding
        if v.entry is not None:
            status = f"explained ({v.entry + 1})"
        elif v.blocking:
            status = "**UNEXPLAINED**"
        else:
            status = "listed (below medium)"
        kind = "" if f.kind == "vulnerability" else " (anomaly)"
        out.append(f"| {f.scan} | {LEVELS.get(f.level, f.level)} | {f.category}{kind} | "
                   f"{f.method} {cell(f.path, 80)} | {cell(f.parameter, 40) or '—'} | "
                   f"{f.module} | {status} |")
    if not verdicts:
        out.append("| — | — | no findings | — | — | — | — |")
    out += ["", "Low findings, listed above, do not fail the run:", ""]
    lows = sorted({(v.finding.category, cell(v.finding.info, 200)) for v in verdicts
                   if v.finding.level < FAIL_AT})
    out += [f"- {category}: {info}" for category, info in lows] or ["- none"]
    out += ["", "Explanations (security/allowlist.toml):", ""]
    used = {v.entry for v in verdicts if v.entry is not None}
    for i, entry in enumerate(allow["finding"]):
        seen = "" if i in used else " *(matched nothing in this run)*"
        paths = entry.get("path", "*")
        where = ", ".join(f"`{p}`" for p in ([paths] if isinstance(paths, str) else paths))
        out.append(f"{i + 1}. {entry['category']} on {where}{seen}: "
                   f"{' '.join(entry['reason'].split())}")
    out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wapiti", type=Path, required=True, help="the wapiti executable")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "security-scan.md")
    parser.add_argument("--allowlist", type=Path, default=ROOT / "security" / "allowlist.toml")
    parser.add_argument("--max-scan-time", type=int, default=900, help="seconds per scan")
    parser.add_argument("--keep", type=Path, help="copy Wapiti's JSON reports and logs here")
    parser.add_argument("--require-deps-audit", action="store_true",
                        help="fail when no vulnerability database can be reached")
    args = parser.parse_args()
    allow = load_allowlist(args.allowlist)
    when = datetime.now(UTC)
    problems: list[str] = []

    print("== bandit", flush=True)
    bandit = bandit_totals()
    print(json.dumps(bandit))

    print("== pip-audit", flush=True)
    deps = run_pip_audit(Path(sys.executable))
    for attempt in deps.attempts:
        print(f"  source {attempt.source}: {attempt.audited} audited, {attempt.skipped} skipped"
              f"{'; ' + attempt.note if attempt.note else ''}")
    explained_ids = {e["id"] for e in allow["advisory"]}
    dep_blocking = [a.id for a in deps.advisories
                    if a.id not in explained_ids and not explained_ids & set(a.aliases)]
    if not deps.reachable:
        print("!!! DEPENDENCIES NOT AUDITED: no vulnerability database is reachable from this "
              "machine (see the report) !!!")
        if args.require_deps_audit:
            problems.append("dependencies not audited (--require-deps-audit)")
    for adv in deps.advisories:
        print(f"  {adv.package} {adv.version}: {adv.id} fixed in {adv.fix_versions}")

    args.wapiti = args.wapiti.absolute()  # the scans run in a temporary directory
    wapiti = wapiti_version(args.wapiti)
    scans: list[ScanResult] = []
    seeded = 0
    statuses: dict[str, int] = {}
    work = Path(tempfile.mkdtemp(prefix="tipline-audit-"))
    try:
        data = work / "data"
        data.mkdir()
        with demo(data, free_port()) as (base, logins):
            print(f"== demo up at {base}; sending {len(TIPS)} tips", flush=True)
            seeded = seed_tips(base)
            if seeded < len(TIPS):
                problems.append(f"only {seeded} of {len(TIPS)} seeded tips were acknowledged")
            print("== wapiti, anonymous", flush=True)
            scans.append(run_wapiti(args.wapiti, "anonymous", base, work,
                                    starts=["/login", "/bao-tin", "/tra-cuu", "/healthz"],
                                    max_scan_s=args.max_scan_time))
            print("== wapiti, logged-in officer", flush=True)
            try:
                cookies = officer_cookies(base, logins, work / "officer-cookies.json")
            except (RuntimeError, StopIteration) as error:
                problems.append(f"officer scan not run: {error}")
                crash = last_traceback(data / "demo.log")
                if crash:
                    print(crash)
                    problems.append("the demo's last traceback: " + crash[-600:])
            else:
                scans.append(run_wapiti(args.wapiti, "officer", base, work,
                                        starts=["/triage/"], cookies=cookies,
                                        max_scan_s=args.max_scan_time))
        statuses = served_statuses(data / "demo.log")
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in work.glob("wapiti-*.*"):
                shutil.copy(path, args.keep / path.name)
            if (work / "data" / "demo.log").exists():
                shutil.copy(work / "data" / "demo.log", args.keep / "demo.log")
        shutil.rmtree(work, ignore_errors=True)

    if statuses.get("5xx"):
        problems.append(f"the demo answered {statuses['5xx']} requests with a 5xx (a crash): "
                        "see its log (--keep DIR)")
    for scan in scans:
        if scan.returncode != 0 or scan.crawled == 0:
            problems.append(f"wapiti {scan.name}: exit code {scan.returncode}, "
                            f"{scan.crawled} pages crawled")
            print(scan.log_tail)
        if scan.name == "officer" and scan.tip_pages == 0:
            problems.append("the officer scan reached no tip page: it ran logged out")
    verdicts = [Verdict(f, explain(f, allow["finding"])) for s in scans for f in s.findings]
    for v in verdicts:
        f = v.finding
        mark = "UNEXPLAINED" if v.blocking else ("explained" if v.entry is not None else "low")
        print(f"  [{f.scan}] {LEVELS.get(f.level, f.level):8} {f.category}: {f.method} {f.path} "
              f"{f.parameter} -> {mark}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(render(
        when=when, bandit=bandit, deps=deps, dep_blocking=dep_blocking, scans=scans,
        verdicts=verdicts, allow=allow, wapiti=wapiti, problems=problems, seeded=seeded,
        statuses=statuses))
    blocking = [v for v in verdicts if v.blocking]
    print(f"report: {args.report}")
    if blocking or dep_blocking or problems:
        print(f"FAIL: {len(blocking)} unexplained web findings, {len(dep_blocking)} unexplained "
              f"advisories, problems: {problems}")
        return 1
    print("PASS" + ("" if deps.reachable else " (dependencies NOT audited: no database reachable)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
