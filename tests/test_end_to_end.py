"""The core slice end to end, as separate processes: simulator → intake → dispatch → ack.

Then the at-rest invariant: with everything the server keeps (database, Redis, data dir, logs,
configuration secrets), the tip text and the informant's Zalo id are nowhere to be read.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import select

from keys import EnvelopeError, open_grant, open_sealed
from tests.conftest import COMMUNE_OA, Stack
from tests.databases import stored_bytes
from tipline.config import Config
from tipline.models import KeyGrant, Message, ReplyAddress, Tip
from tipline.reply_addresses import open_address
from tipline.runtime import Runtime
from tipline.zalo.sender import user_id_by_app

USER = "7391045528810466123"
TEXT = "Nhóm Ba Tý tổ chức đánh bạc tại quán cà phê Hoa Sữa, đường Nguyễn Trãi"


def wait_for_ack(stack: Stack, user: str, timeout: float = 20) -> tuple[dict[str, str], float]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        calls = httpx.get(f"{stack.base_url}/_sim/messages").json()
        mine = [c for c in calls if c["user_id"] == user and c["status"] == "ok"]
        if mine:
            return mine[0], time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("no acknowledgement reached the simulator")


def redis_dump(redis: Redis) -> bytes:
    """Every key and value in Redis, read by type so nothing hides in an encoding."""
    out: list[bytes] = []
    for key in redis.scan_iter(count=1000):
        out.append(key)
        kind = redis.type(key)
        if kind == b"string":
            out.append(redis.get(key) or b"")
        elif kind == b"hash":
            for field, value in redis.hgetall(key).items():
                out += [field, value]
        elif kind == b"list":
            out += redis.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(redis.smembers(key))
        elif kind == b"zset":
            out += [member for member, _ in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for _, fields in redis.xrange(key):
                for field, value in fields.items():
                    out += [field, value]
    return b"\n".join(out)


def files_under(root: Path, skip: Path) -> bytes:
    """Every byte of every file under ``root`` except the simulator's (Zalo's side)."""
    return b"\n".join(
        path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and skip not in path.parents
    )


def test_tip_sent_from_the_simulator_is_dispatched_and_acknowledged(
    stack: Stack, runtime: Runtime, config: Config
) -> None:
    sent = stack.tipline(
        "zalo", "send", "--to", stack.base_url, "--oa", COMMUNE_OA, "--user", USER, "--text", TEXT
    )
    assert sent.returncode == 0, sent.stderr + sent.stdout
    ack, seconds = wait_for_ack(stack, USER)
    print(f"webhook → acknowledgement recorded by the simulator: {seconds * 1000:.0f} ms")
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.unit is not None and tip.unit.code == "v2025:32134"
        assert tip.receipt_code in ack["text"]
        assert ack["oa_id"] == COMMUNE_OA
        assert "đã nhận được tin báo" in ack["text"]
    # Zalo answered before the worker committed "sent": give it that moment.
    deadline = time.monotonic() + 10
    while True:
        with runtime.sessions() as session:
            outbound = session.scalars(select(Message).where(Message.direction == "out")).one()
        if outbound.delivery == "sent" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert outbound.delivery == "sent" and outbound.sealed_for_relay is None

    # A follow-up joins the same tip; no second acknowledgement.
    again = stack.tipline(
        "zalo",
        "send",
        "--to",
        stack.base_url,
        "--oa",
        COMMUNE_OA,
        "--user",
        USER,
        "--location",
        "9.10579,105.076",
    )
    assert again.returncode == 0, again.stderr
    with runtime.sessions() as session:
        deadline = time.monotonic() + 10
        while len(session.scalars(select(Tip)).one().messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            session.expire_all()
        assert len(session.scalars(select(Tip)).one().messages) == 3

    # --- at rest --------------------------------------------------------------------------
    for proc_log in stack.logs.iterdir():
        assert proc_log.stat().st_size > 0  # the processes did log: the search means something
    secrets_of_the_informant = [
        TEXT.encode(),
        "Hoa Sữa".encode(),
        b"Ba T\xc3\xbd",
        USER.encode(),
        user_id_by_app(config.zalo_app_id, USER).encode(),
    ]
    at_rest = {
        "database and data dir": files_under(config.data_dir, config.data_dir / "zalo-simulator"),
        "database files": stored_bytes(config.database_url),
        "redis": redis_dump(runtime.redis),
        "logs": files_under(stack.logs, stack.logs / "none"),
    }
    assert b"v2025:32134" in at_rest["database files"]  # the files hold what was committed
    for where, blob in at_rest.items():
        assert blob
        for secret in secrets_of_the_informant:
            assert secret not in blob, f"{secret!r} found in {where}"

    # No configuration secret opens a grant, a message or the reply address: the transit
    # epochs and the address key live only in the volatile key store (docs/threat-model.md).
    secrets = Config.from_env(stack.env).secrets
    with runtime.sessions() as session:
        for row in session.scalars(select(KeyGrant)):
            try:
                open_grant(row.sealed, secrets.relay_key, binding=row.binding)
                raise AssertionError("a configuration secret opens a key grant")
            except EnvelopeError:
                pass
        for message in session.scalars(select(Message)):
            try:
                open_sealed(
                    secrets.relay_key,
                    message.sealed_body,
                    purpose="message",
                    binding=message.binding,
                )
                raise AssertionError("a configuration secret opens a message")
            except EnvelopeError:
                pass
        address = session.scalars(select(ReplyAddress)).one()
        assert address.sealed_address is not None
        assert open_address(runtime.keystore, address.informant_alias, address.sealed_address) == {
            "kind": "user",
            "user_id": USER,
        }  # inside its window, with the key the volatile store holds
        with pytest.raises(EnvelopeError):
            open_sealed(
                secrets.relay_key,
                address.sealed_address,
                purpose="reply_address",
                binding=address.binding,
            )


def test_simultaneous_messages_of_one_new_informant_are_all_stored(
    stack: Stack, runtime: Runtime
) -> None:
    """Two gunicorn workers, two messages of a new informant at the same moment: none lost."""
    import threading

    from tipline.zalo.sender import build_event, post_event

    pairs = 25
    answers: list[int] = []

    def send(user: str, n: int) -> None:
        raw = build_event(COMMUNE_OA, user, text=f"ảnh {n}", msg_id=f"race-{user}-{n}")
        answers.append(post_event(stack.base_url, raw).status_code)

    for i in range(pairs):
        user = f"77{i:017d}"
        threads = [threading.Thread(target=send, args=(user, n)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [200] * (2 * pairs)
    deadline = time.monotonic() + 20  # the worker expands stored events every 100 ms
    inbound: list[Message] = []
    while time.monotonic() < deadline and len(inbound) < 2 * pairs:
        time.sleep(0.1)
        with runtime.sessions() as session:
            inbound = list(session.scalars(select(Message).where(Message.direction == "in")))
    assert len(inbound) == 2 * pairs
    with runtime.sessions() as session:
        assert len(session.scalars(select(ReplyAddress)).all()) == pairs
