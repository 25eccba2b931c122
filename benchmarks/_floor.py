"""The floor: the CPU a tip cannot avoid, measured in the same run as the benchmark it judges.

Per tip, in this process (``time.process_time``): the webhook's signature check; the 15
public-key operations a tip's life needs (event sealed to transit and opened, the tip's key
pair, the reply address sealed, the body sealed to the tip, the tip key granted to transit and
to the fallback unit, the grant and the body opened at dispatch, the grant to the unit, the
routing record sealed, the acknowledgement sealed and opened to send it, the audit hashes);
the rows written with raw SQL on SQLite (the event, tip, message, two grants, the reply
address, an audit event, the outbound message; the updates that mark them); and one Zalo POST's
client side on a kept-alive connection to a bare Flask app. Beside it, in its own gunicorn
(two workers, as the web tier), the server side of a bare Flask endpoint that only parses the
body, for each request sent on a fresh connection as the load generator sends webhooks.

``floor_ms_per_tip`` = the in-process part + the bare Flask server's CPU per request.
Nothing here is Tipline's code: it is what any implementation of the same secrecy would pay.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _crypto_and_rows(n: int, post: Any) -> dict[str, float]:
    from keys import chain_hash, generate_keypair, new_secret_key, webhook_mac
    from tipline.models.sealed_fields import (
        INBOUND_EVENT,
        KEY_GRANT,
        MESSAGE_BODY,
        MESSAGE_FOR_RELAY,
        REPLY_ADDRESS,
        TIP_ROUTING,
    )

    transit, unit, fallback = generate_keypair(), generate_keypair(), generate_keypair()
    box = new_secret_key()
    body = json.dumps({"text": "Có người buôn bán ma túy ở ấp 3 xã Cái Nước, tối nào cũng tụ"
                               " tập", "event": "user_send_text"}, ensure_ascii=False).encode()
    tmp = Path(tempfile.mkdtemp(prefix="tipline-floor-"))
    db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript("""
        CREATE TABLE ev (id INTEGER PRIMARY KEY, k TEXT UNIQUE, sealed BLOB, done REAL);
        CREATE TABLE tip (id INTEGER PRIMARY KEY, pub TEXT, key BLOB, unit INT, at REAL);
        CREATE TABLE msg (id INTEGER PRIMARY KEY, tip INT, sealed BLOB, k TEXT, sent REAL);
        CREATE TABLE grt (id INTEGER PRIMARY KEY, tip INT, holder INT, sealed BLOB);
        CREATE TABLE addr (id INTEGER PRIMARY KEY, alias TEXT UNIQUE, sealed BLOB);
        CREATE TABLE aud (id INTEGER PRIMARY KEY, obj TEXT, h TEXT);
    """)
    head = "0" * 64
    crypto = rows = http = 0.0
    for i in range(n):
        t0 = time.process_time()
        k, m, t = f"k{i}", f"m{i}", f"t{i}"
        mac = webhook_mac("app", body, "1", "secret")
        event = INBOUND_EVENT.seal(transit.public_key, body, dedup_key=k)
        opened = INBOUND_EVENT.open(transit, event, dedup_key=k)
        tip = generate_keypair()
        address = REPLY_ADDRESS.seal(box, b'{"user_id":"1234567890"}', informant_alias=t)
        sealed_body = MESSAGE_BODY.seal(tip.public_key, opened, message_public_id=m)
        to_transit = KEY_GRANT.seal(tip, transit.public_key, "tip", i, "transit", 0)
        to_fallback = KEY_GRANT.seal(tip, fallback.public_key, "tip", i, "unit_key", 1)
        tip_key = KEY_GRANT.open(to_transit, transit, "tip", i, "transit", 0)
        words = MESSAGE_BODY.open(tip_key, sealed_body, message_public_id=m)
        to_unit = KEY_GRANT.seal(tip_key, unit.public_key, "tip", i, "unit_key", 2)
        routing = TIP_ROUTING.seal(tip.public_key, words[:40], tip_public_id=t)
        reply = MESSAGE_FOR_RELAY.seal(transit.public_key, b"ack " + mac.encode(),
                                       message_public_id=m + "a")
        ack = MESSAGE_BODY.seal(tip.public_key, b"ack", message_public_id=m + "a")
        sent = MESSAGE_FOR_RELAY.open(transit, reply, message_public_id=m + "a")
        head = chain_hash(chain_hash(head, f"received {i}"), f"dispatched {i}")
        t1 = time.process_time()
        db.execute("INSERT INTO ev (k, sealed) VALUES (?, ?)", (f"k{i}", event))
        db.execute("BEGIN IMMEDIATE")
        tip_id = db.execute("INSERT INTO tip (pub, key, at) VALUES (?, ?, ?)",
                            (f"p{i}", tip.public_key.to_bytes(), time.time())).lastrowid
        db.execute("INSERT INTO addr (alias, sealed) VALUES (?, ?)", (f"a{i}", address))
        db.execute("INSERT INTO msg (tip, sealed, k) VALUES (?, ?, ?)",
                   (tip_id, sealed_body, f"k{i}"))
        db.executemany("INSERT INTO grt (tip, holder, sealed) VALUES (?, ?, ?)",
                       [(tip_id, 0, to_transit), (tip_id, 1, to_fallback)])
        db.execute("INSERT INTO aud (obj, h) VALUES (?, ?)", (f"p{i}", head))
        db.execute("UPDATE ev SET done = 1, sealed = NULL WHERE k = ?", (f"k{i}",))
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO grt (tip, holder, sealed) VALUES (?, ?, ?)", (tip_id, 2, to_unit))
        db.execute("DELETE FROM grt WHERE tip = ? AND holder = 0", (tip_id,))
        db.execute("UPDATE tip SET unit = 1, key = ? WHERE id = ?", (routing, tip_id))
        db.execute("INSERT INTO msg (tip, sealed) VALUES (?, ?)", (tip_id, ack))
        db.execute("INSERT INTO aud (obj, h) VALUES (?, ?)", (f"p{i}", head))
        db.execute("COMMIT")
        t2 = time.process_time()
        post(sent)
        t3 = time.process_time()
        db.execute("UPDATE msg SET sent = 1 WHERE tip = ? AND k IS NULL", (tip_id,))
        t4 = time.process_time()
        crypto += t1 - t0
        rows += (t2 - t1) + (t4 - t3)
        http += t3 - t2
    db.close()
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    return {"crypto_ms": crypto * 1000 / n, "rows_ms": rows * 1000 / n,
            "zalo_post_client_ms": http * 1000 / n}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree_cpu(root_pid: int) -> float:
    """CPU seconds of ``root_pid``'s process group (gunicorn's master and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == root_pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _fresh_connection_posts(port: int, n: int, rate: float) -> None:
    raw = (f"POST /zalo/webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
           ).encode()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        await reader.read()
        writer.close()

    start = time.monotonic()
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)


def measure_floor(n: int = 400, rate: float = 200.0) -> dict[str, Any]:
    """The floor per tip (ms of CPU), with its parts."""
    import httpx

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "--no-control-socket", "bare_app:app"],
        env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/zalo/webhook"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, content=b"{}", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        asyncio.run(_fresh_connection_posts(port, 100, rate))  # warm
        before = _tree_cpu(proc.pid)
        asyncio.run(_fresh_connection_posts(port, n, rate))
        flask_ms = (_tree_cpu(proc.pid) - before) * 1000 / n
        with httpx.Client(timeout=5) as client:
            def post(data: bytes) -> None:
                client.post(url, content=b'{"m":"' + data[:8].hex().encode() + b'"}')

            _crypto_and_rows(50, post)  # warm
            parts = _crypto_and_rows(n, post)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(15)
    parts["bare_flask_server_ms"] = flask_ms
    total = sum(parts.values())
    return {"floor_ms_per_tip": round(total, 2), **{k: round(v, 3) for k, v in parts.items()}}


if __name__ == "__main__":
    print(json.dumps(measure_floor()))
