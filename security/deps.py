"""pip-audit over the project's installed dependencies, honest about an unreachable database.

pip-audit asks a vulnerability service about each installed distribution. Where the service
cannot be reached it still prints "No known vulnerabilities found" and exits 0 (pypi source:
every package skipped as "not found"), which reads like a clean bill of health. So every
source is tried in turn and a result counts only when at least one dependency was really
audited; otherwise the run says, in its output and in the report, that nothing was audited.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOURCES = ("pypi", "osv")  # pip-audit's sources: PyPI's JSON API, then the OSV database


@dataclass
class Advisory:
    package: str
    version: str
    id: str
    aliases: list[str]
    fix_versions: list[str]
    description: str


@dataclass
class SourceAttempt:
    source: str
    audited: int
    skipped: int
    note: str  # why nothing was audited, hosts and URLs removed


@dataclass
class DepsResult:
    attempts: list[SourceAttempt] = field(default_factory=list)
    source: str | None = None  # the source whose answer counts; None: nothing was audited
    audited: int = 0
    advisories: list[Advisory] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        return self.source is not None


def _redact(text: str) -> str:
    """Error text without URLs or host names: the report names no service's address."""
    text = re.sub(r"https?://\S+", "<url>", text)
    text = re.sub(r"host='[^']*'", "host=<host>", text)
    return re.sub(r"\(host=<host>, port=\d+\)", "", text)


def _why(stderr: str, skipped: list[str]) -> str:
    if "NameResolutionError" in stderr or "Failed to resolve" in stderr:
        return "the service's name does not resolve from this machine (no network to it)"
    if "ConnectionError" in stderr or "Max retries exceeded" in stderr:
        return "the service refused or dropped the connection"
    if any("not found on PyPI" in reason for reason in skipped):
        return (
            "every dependency answered 'not found': the package index reached here serves "
            "downloads but not the JSON API that carries vulnerability data"
        )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return _redact(lines[-1]) if lines else "no dependency could be audited"


def run_pip_audit(python: Path, timeout: float = 900) -> DepsResult:
    """Audit the environment of ``python`` (which must have pip-audit installed)."""
    result = DepsResult()
    for source in SOURCES:
        cmd = [str(python), "-m", "pip_audit", "-s", source, "-f", "json",
               "--progress-spinner", "off", "--skip-editable"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            result.attempts.append(SourceAttempt(source, 0, 0, f"timed out after {timeout:g} s"))
            continue
        try:
            report = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except json.JSONDecodeError:
            report = {}
        deps = report.get("dependencies", [])
        skipped = [d.get("skip_reason", "") for d in deps if "skip_reason" in d]
        audited = [d for d in deps if "skip_reason" not in d]
        note = "" if audited else _why(proc.stderr, skipped)
        result.attempts.append(SourceAttempt(source, len(audited), len(skipped), note))
        if audited:
            result.source, result.audited = source, len(audited)
            result.advisories = [
                Advisory(
                    package=d["name"],
                    version=d.get("version", "?"),
                    id=v["id"],
                    aliases=list(v.get("aliases", [])),
                    fix_versions=list(v.get("fix_versions", [])),
                    description=str(v.get("description", ""))[:300],
                )
                for d in audited
                for v in d.get("vulns", [])
            ]
            break
    return result
