"""Wapiti against a running `tipline demo`: the anonymous surface and a logged-in officer.

The demo runs on loopback with its own data dir (it seeds units and accounts and writes
demo-logins.json). A few real tips are sent first as signed webhooks, so the officer's inbox
and tip pages (with their forms) exist to be crawled and attacked. The officer logs in here
with password and TOTP (pyotp); Wapiti then starts from that session's cookies (``-c``, its
JSON cookie file) and sends the same User-Agent, since Flask-Login's "strong" session
protection binds a session to it. (``--drop-set-cookie`` is not used: in Wapiti 3.3 it drops
the loaded cookies too, and the scan would run logged out.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from keys import webhook_mac  # noqa: E402
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_OA_SECRET_KEY  # noqa: E402

USER_AGENT = "tipline-audit/1 (wapiti)"
OFFICER = "canbo.luongthetran"  # the demo's officer of Công an xã Lương Thế Trân
OFFICER_OA = "3886132808788132134"  # that commune's OA
TIPS = (
    "Có người buôn bán ma túy ở ấp 3 xã Lương Thế Trân, tối nào cũng tụ tập",
    "Nhóm thanh niên đua xe trái phép trên quốc lộ 1 đoạn qua xã Lương Thế Trân",
    "Có đường dây cho vay nặng lãi ở chợ xã Lương Thế Trân, số điện thoại 0912345678",
)

# Wapiti's default ("common") modules and a few more, minus what cannot run offline or does
# not apply: ssrf and xxe need Wapiti's public callback endpoint; ssl: the demo is plain HTTP
# on loopback (TLS ends at the reverse proxy, deploy/); log4shell/spring4shell are Java-only
# and need a DNS callback; wapp, cms, wp_enum, nikto download fingerprint databases;
# buster/brute_login_form brute-force (the latter would lock the accounts); takeover,
# network_device, printer, htp probe other hosts or devices; timesql: SQLite has no SLEEP;
# ldap: Tipline talks to no directory (no LDAP client among its dependencies), and the module's
# boolean test compares page hashes, which a fresh CSRF token or flashed message changes on
# every response: in a first run it "found" LDAP injection in every form, login included.
MODULES = "common,-ssrf,-ssl,csrf,crlf,methods,backup,htaccess,shellshock"
EXCLUDED_PATHS = (
    "/_sim/*",  # the Zalo simulator: demo-only, never mounted in production
    "/logout",  # would end the officer's session mid-scan
)


@dataclass
class Finding:
    scan: str  # "anonymous" or "officer"
    kind: str  # "vulnerability" or "anomaly" (Wapiti's split: anomalies are 500s, timeouts)
    category: str
    level: int  # Wapiti: 0 info, 1 low, 2 medium, 3 high, 4 critical
    method: str
    path: str
    parameter: str
    info: str
    module: str


@dataclass
class ScanResult:
    name: str
    findings: list[Finding]
    crawled: int
    tip_pages: int  # distinct /triage/tips/<id> URLs Wapiti attacked: proof of a live session
    seconds: float
    returncode: int
    log_tail: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def demo(data_dir: Path, port: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """`tipline demo` on ``port`` with ``data_dir``; yields its base URL and its logins."""
    env = {**os.environ, "TIPLINE_DATA_DIR": str(data_dir)}
    for name in ("TIPLINE_DATABASE_URL", "TIPLINE_REDIS_URL", "ZALO_API_BASE", "ZALO_OAUTH_BASE"):
        env.pop(name, None)  # the demo's own embedded defaults, not the caller's services
    log = (data_dir / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tipline.cli", "demo", "--port", str(port)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError("tipline demo exited:\n" + _tail(data_dir / "demo.log"))
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tipline demo did not come up:\n" + _tail(data_dir / "demo.log"))
            time.sleep(0.3)
        logins = json.loads((data_dir / "demo-logins.json").read_text())
        yield base, logins
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the demo stops its web and worker children
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def last_traceback(log: Path, lines: int = 40) -> str:
    """The demo's last logged traceback (a 500 leaves one), or ""."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    starts = [i for i, line in enumerate(text) if line.startswith("Traceback")]
    return "\n".join(text[starts[-1]:starts[-1] + lines]) if starts else ""


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


def seed_tips(base: str, timeout: float = 60) -> int:
    """Send TIPS to the officer's OA as Zalo would; wait until each was acknowledged."""
    def sent() -> int:
        return len(httpx.get(f"{base}/_sim/messages", timeout=5).json())

    before = sent()
    for i, text in enumerate(TIPS):
        timestamp = str(int(time.time() * 1000))
        raw = json.dumps(
            {
                "app_id": DEMO_ZALO_APP_ID,
                "sender": {"id": f"77000000000000{i:05d}"},
                "user_id_by_app": f"88000000000000{i:05d}",
                "recipient": {"id": OFFICER_OA},
                "event_name": "user_send_text",
                "message": {"text": text, "msg_id": f"audit-{timestamp}-{i}"},
                "timestamp": timestamp,
            },
            ensure_ascii=False, separators=(",", ":"),
        ).encode()
        mac = webhook_mac(DEMO_ZALO_APP_ID, raw, timestamp, DEMO_ZALO_OA_SECRET_KEY)
        response = httpx.post(f"{base}/zalo/webhook", content=raw, timeout=10, headers={
            "Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"})
        response.raise_for_status()
    deadline = time.monotonic() + timeout
    while (acked := sent() - before) < len(TIPS) and time.monotonic() < deadline:
        time.sleep(0.5)
    return acked


def officer_cookies(base: str, logins: list[dict[str, Any]], path: Path,
                    username: str = OFFICER) -> Path:
    """Log in through the real form (password + TOTP); write the session's cookies to
    ``path`` in Wapiti's JSON cookie format (host, then cookie path, then name)."""
    account = next(a for a in logins if a["username"] == username)
    with httpx.Client(base_url=base, headers={"User-Agent": USER_AGENT}, timeout=30) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or \
            re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        if token is None:
            raise RuntimeError("no CSRF token on the login page")
        answer = client.post("/login", data={
            "csrf_token": token.group(1),
            "username": account["username"],
            "password": account["password"],
            "code": pyotp.TOTP(account["totp_secret"]).now(),
        })
        if answer.status_code != 302:
            raise RuntimeError(f"officer login failed: HTTP {answer.status_code}")
        if client.get("/triage/").status_code != 200:
            raise RuntimeError("the officer session does not open the inbox")
        jar: dict[str, dict[str, dict[str, Any]]] = {}
        for c in client.cookies.jar:
            jar.setdefault(c.path or "/", {})[c.name] = {
                "value": c.value, "expires": c.expires, "secure": c.secure, "port": None,
                "version": 0}
        path.write_text(json.dumps({"127.0.0.1": jar}))
        return path


def wapiti_version(wapiti: Path) -> str:
    out = subprocess.run([str(wapiti), "--version"], capture_output=True, text=True,
                         timeout=60, check=False).stdout
    found = re.findall(r"\b\d+\.\d+\.\d+\b", out)
    return found[-1] if found else "?"


def run_wapiti(wapiti: Path, name: str, base: str, work: Path, *, starts: list[str],
               cookies: Path | None = None, max_scan_s: int = 900,
               max_attack_s: int = 180) -> ScanResult:
    """One Wapiti scan of ``base`` (folder scope); its findings, read from its JSON report."""
    out = work / f"wapiti-{name}.json"
    store = work / f"wapiti-{name}-store"
    shutil.rmtree(store, ignore_errors=True)
    cmd = [
        str(wapiti), "-u", f"{base}/", "--scope", "folder", "-m", MODULES,
        "--no-bugreport", "-f", "json", "-o", str(out), "-v", "1", "-A", USER_AGENT,
        "--flush-session", "--store-session", str(store), "--store-config", str(store),
        "--max-scan-time", str(max_scan_s), "--max-attack-time", str(max_attack_s),
        "-t", "20",
    ]
    for path in starts:
        cmd += ["-s", f"{base}{path}"]
    for path in EXCLUDED_PATHS:
        cmd += ["-x", f"{base}{path}"]
    if cookies is not None:
        cmd += ["-c", str(cookies)]
    started = time.monotonic()
    log = work / f"wapiti-{name}.log"
    with log.open("wb") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=work,
                              timeout=max_scan_s * 3 + 600, check=False)
    seconds = time.monotonic() - started
    if not out.exists():
        return ScanResult(name, [], 0, 0, seconds, proc.returncode or 1, _tail(log))
    report = json.loads(out.read_text())
    findings = [
        Finding(name, kind, category, int(item.get("level") or 0), item.get("method", ""),
                item.get("path", ""), item.get("parameter") or "", item.get("info", ""),
                item.get("module", ""))
        for kind, section in (("vulnerability", "vulnerabilities"), ("anomaly", "anomalies"))
        for category, items in report.get(section, {}).items()
        for item in items
    ]
    crawled = int(report.get("infos", {}).get("crawled_pages_nbr") or 0)
    tips = set(re.findall(r"/triage/tips/[a-z0-9]+", log.read_text(errors="replace")))
    return ScanResult(name, findings, crawled, len(tips), seconds, proc.returncode,
                      _tail(log, 1500))
