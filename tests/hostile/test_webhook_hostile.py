"""POST /zalo/webhook under attack: signature and timestamp games, replays, hostile bodies.

Every refused delivery must get a clear 4xx (or, where Zalo needs a 200, a logged ignore),
store nothing at all (every table and the file store compared before and after, expansion run
too) and echo nothing of what it was sent. A body Zalo signed is never refused (Zalo would
unsubscribe the app): what cannot be read is kept in quarantine and nothing else is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from keys import webhook_mac
from tests.conftest import APP_ID, APP_SECRET, COMMUNE_OA, OA_SECRET, expand
from tests.hostile.snapshot import assert_unchanged, snapshot
from tests.zalo_events import event, signed_headers
from tipline.models import Attachment, InboundEvent, Message, QuarantinedEvent
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

TS = "1718000100000"
OTHER_APP = "1111111111111111111"
Headers = dict[str, str] | list[tuple[str, str]]
Case = Callable[[], tuple[bytes, Headers]]


def mac(raw: bytes, *, timestamp: str = TS, app_id: str = APP_ID, secret: str = OA_SECRET) -> str:
    return "mac=" + webhook_mac(app_id, raw, timestamp, secret)


def json_headers(signature: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-ZEvent-Signature"] = signature
    return headers


def signed(raw: bytes, **kw: str) -> dict[str, str]:
    """Signed with the right formula over exactly ``raw``: only the body itself is hostile."""
    return json_headers(mac(raw, **kw))


def replace_timestamp(raw: bytes, new: bytes) -> bytes:
    return raw.replace(b'"timestamp":"' + TS.encode() + b'"', b'"timestamp":' + new)


def body(**changes: Any) -> bytes:
    """A text event as a dict with ``changes`` applied (None deletes a key), compact JSON."""
    data = json.loads(event())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


GOOD = event()
GOOD_MAC = mac(GOOD)

# --- signature games: 401 -------------------------------------------------------------------

SIGNATURE_GAMES: dict[str, Case] = {
    "missing": lambda: (GOOD, json_headers(None)),
    "empty": lambda: (GOOD, json_headers("")),
    "prefix only": lambda: (GOOD, json_headers("mac=")),
    "all zeros": lambda: (GOOD, json_headers("mac=" + "0" * 64)),
    "not hex": lambda: (GOOD, json_headers("mac=" + "z" * 64)),
    "truncated": lambda: (GOOD, json_headers(GOOD_MAC[:-1])),
    "one digit more": lambda: (GOOD, json_headers(GOOD_MAC + "0")),
    "space inside": lambda: (GOOD, json_headers(GOOD_MAC[:20] + " " + GOOD_MAC[20:])),
    "other label": lambda: (GOOD, json_headers("sha256=" + GOOD_MAC[4:])),
    "app secret instead of OA secret": lambda: (GOOD, signed(GOOD, secret=APP_SECRET)),
    "OA secret in the wrong case": lambda: (GOOD, signed(GOOD, secret=OA_SECRET.swapcase())),
    "another OA secret": lambda: (GOOD, signed(GOOD, secret="ANOTHER_OA_SECRET_KEY")),
    "OA id as the first term": lambda: (GOOD, signed(GOOD, app_id=COMMUNE_OA)),
    "HMAC instead of Zalo's formula": lambda: (
        GOOD,
        json_headers("mac=" + hmac.new(OA_SECRET.encode(), GOOD, hashlib.sha256).hexdigest()),
    ),
    "other app's event signed by that app": lambda: (
        event(app_id=OTHER_APP),
        signed(event(app_id=OTHER_APP), app_id=OTHER_APP, secret="OTHER_APPS_OA_SECRET"),
    ),
    "other app's event with our mac formula": lambda: (
        event(app_id=OTHER_APP),
        signed(event(app_id=OTHER_APP), app_id=OTHER_APP),
    ),
    "signature of a different body": lambda: (event(text="Tin khác"), json_headers(GOOD_MAC)),
    "body re-serialised after signing": lambda: (
        json.dumps(json.loads(GOOD), ensure_ascii=False, indent=1).encode(),
        json_headers(GOOD_MAC),
    ),
    "body case changed after signing": lambda: (
        GOOD.replace(b"user_send_text", b"USER_SEND_TEXT"),
        json_headers(GOOD_MAC),
    ),
    "whitespace appended after signing": lambda: (GOOD + b"\n", json_headers(GOOD_MAC)),
    "bad signature first, good one second": lambda: (
        GOOD,
        [
            ("Content-Type", "application/json"),
            ("X-ZEvent-Signature", "mac=" + "1" * 64),
            ("X-ZEvent-Signature", GOOD_MAC),
        ],
    ),
    # --- timestamp games ---
    "mac over another timestamp": lambda: (GOOD, signed(GOOD, timestamp=str(int(TS) + 1))),
    "mac without the timestamp": lambda: (GOOD, signed(GOOD, timestamp="")),
    "timestamp edited after signing": lambda: (
        replace_timestamp(GOOD, b'"1718000999999"'),
        json_headers(GOOD_MAC),
    ),
    "mac over an X-ZEvent-Timestamp header": lambda: (
        GOOD,
        {**signed(GOOD, timestamp="1999999999999"), "X-ZEvent-Timestamp": "1999999999999"},
    ),
    "mac over the number written another way": lambda: (
        replace_timestamp(GOOD, TS.encode()),
        signed(replace_timestamp(GOOD, TS.encode()), timestamp="1.7180001e+12"),
    ),
    "mac over the first of two timestamps": lambda: (
        GOOD[:-1] + b',"timestamp":"1718000999999"}',
        signed(GOOD[:-1] + b',"timestamp":"1718000999999"}', timestamp=TS),
    ),
    "mac over the padded timestamp stripped": lambda: (
        replace_timestamp(GOOD, b'" 1718000100000 "'),
        signed(replace_timestamp(GOOD, b'" 1718000100000 "'), timestamp=TS),
    ),
}

# --- bodies whose signature cannot be checked: 400 / 413 --------------------------------------
# No timestamp to check the signature with (Zalo's formula covers the body's timestamp), so
# nothing says Zalo sent them: refused, nothing stored.

DEEP_ARRAY = b"[" * 30_000 + b"]" * 30_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000

BAD_BODIES: dict[str, tuple[Callable[[], bytes], int]] = {
    "over the size cap": (lambda: event(text="x" * 70_000), 413),
    "deeply nested arrays": (lambda: DEEP_ARRAY, 400),
    "deeply nested objects": (lambda: DEEP_OBJECT, 400),
    "a JSON string, not an object": (lambda: b'"user_send_text"', 400),
    "timestamp missing": (lambda: body(timestamp=None), 400),
    "timestamp null": (
        lambda: GOOD.replace(b'"timestamp":"' + TS.encode() + b'"', b'"timestamp":null'),
        400,
    ),
    "timestamp true": (lambda: replace_timestamp(GOOD, b"true"), 400),
    "timestamp a float": (lambda: replace_timestamp(GOOD, b"1718000100000.5"), 400),
    "timestamp a list": (lambda: replace_timestamp(GOOD, b'["' + TS.encode() + b'"]'), 400),
    "timestamp of 5,000 digits": (lambda: replace_timestamp(GOOD, b"9" * 5_000), 400),
}

# --- bodies Zalo signed that Tipline cannot read: 200, kept in quarantine ---------------------
# A 4xx would make Zalo retry and then cancel the webhook of every OA (zalo.md §8.2). They are
# kept sealed (tests/test_quarantine.py), and nothing else is stored.

QUARANTINED: dict[str, Callable[[], bytes]] = {
    "nested 10,000 deep inside the message": lambda: GOOD.replace(
        b'"msg_id"', b'"x":' + b"[" * 10_000 + b"]" * 10_000 + b',"msg_id"'
    ),
    "invalid UTF-8": lambda: GOOD.replace("ma túy".encode(), b"ma t\xff\xfey"),
    "overlong UTF-8 slash": lambda: GOOD.replace(b"12", b"\xc0\xaf12"),
    "lone surrogate escaped in the text": lambda: GOOD.replace(b"12", b"\\ud800 12"),
    "lone surrogate in the sender id": lambda: GOOD.replace(
        b'"id":"2468458835296197922"', b'"id":"24684\\udfff"'
    ),
    "raw NUL byte inside a string": lambda: GOOD.replace(b"12", b"1\x002"),
    "event_name missing": lambda: body(event_name=None),
    "message not an object": lambda: body(message="<script>alert(1)</script>"),
    "text over 20,000 characters": lambda: event(text="<b>" * 6_667 + "xy", msg_id="long"),
    "21 attachments": lambda: event(
        "user_send_image",
        attachments=[{"type": "image", "payload": {"url": f"https://x/{n}"}} for n in range(21)],
    ),
    "msg_id of 65 characters": lambda: event(msg_id="m" * 65),
    "msg_id an object": lambda: GOOD.replace(
        b'"msg_id":"96d3cdf3af150460909a"', b'"msg_id":{"$ne":null}'
    ),
    "sender id of 10,000 characters": lambda: event(user="1" * 10_000),
    "recipient missing": lambda: body(recipient=None),
    "recipient id of 40 digits": lambda: event(oa="1" * 40),
    "recipient id not an OA id": lambda: event(oa="<script>alert(1)</script>"),
    "anonymous chat without conversation id": lambda: body(event_name="anonymous_send_text"),
    "the app id of another app": lambda: event(app_id=OTHER_APP),
}


def deliver(client: FlaskClient, raw: bytes, headers: Headers) -> Any:
    return client.post("/zalo/webhook", data=raw, headers=headers)


def assert_refused(
    client: FlaskClient,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    headers: Headers,
    status: int,
) -> None:
    before = snapshot(runtime)
    caplog.set_level(logging.INFO, logger="tipline.public.webhook")
    response = deliver(client, raw, headers)
    assert response.status_code == status, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["ok"] is False and set(answer) == {"ok", "error"}  # nothing echoed back
    assert any(r.getMessage().startswith("webhook refused") for r in caplog.records)
    assert expand(runtime) == 0
    assert_unchanged(runtime, before)


@pytest.mark.parametrize("case", SIGNATURE_GAMES.values(), ids=SIGNATURE_GAMES.keys())
def test_signature_and_timestamp_games_are_401_and_store_nothing(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    raw, headers = case()
    assert_refused(client, runtime, caplog, raw, headers, 401)


@pytest.mark.parametrize(("make", "status"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_hostile_bodies_are_refused_even_when_signed_and_store_nothing(
    client: FlaskClient,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[], bytes],
    status: int,
) -> None:
    raw = make()
    assert_refused(client, runtime, caplog, raw, signed(raw), status)
    # The queue is not blocked: the next good event is stored and expanded as usual.
    assert deliver(client, GOOD, signed(GOOD)).status_code == 200
    assert expand(runtime) == 1


@pytest.mark.parametrize("make", QUARANTINED.values(), ids=QUARANTINED.keys())
def test_hostile_bodies_zalo_signed_are_200_and_only_quarantined(
    client: FlaskClient,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[], bytes],
) -> None:
    raw = make()
    before = snapshot(runtime, skip=("quarantined_events",))
    caplog.set_level(logging.INFO, logger="tipline.public.webhook")
    response = deliver(client, raw, signed(raw))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"ok": True, "quarantined": True}  # nothing echoed back
    assert any("quarantined" in r.getMessage() for r in caplog.records)
    assert expand(runtime) == 0
    assert_unchanged(runtime, before, skip=("quarantined_events",))
    with runtime.sessions() as db:
        [(size, sealed)] = db.execute(
            select(QuarantinedEvent.size, QuarantinedEvent.sealed_event)
        ).all()
    assert size == len(raw)
    assert sealed is None or b"<script>" not in sealed
    # The queue is not blocked: the next good event is stored and expanded as usual.
    assert deliver(client, GOOD, signed(GOOD)).status_code == 200
    assert expand(runtime) == 1


def test_a_location_without_coordinates_is_a_message_not_a_refusal(
    client: FlaskClient, runtime: Runtime
) -> None:
    raw = event("user_send_location", attachments=[{"type": "location", "payload": {}}])
    assert deliver(client, raw, signed(raw)).get_json() == {"ok": True}
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        assert list(db.scalars(select(Message.kind))) == ["location"]


def test_the_uppercase_hex_of_the_right_mac_is_the_same_mac(
    client: FlaskClient, runtime: Runtime
) -> None:
    """Not a game: hex digits have no case. The event is accepted, once."""
    upper = "MAC=" + GOOD_MAC[4:].upper()
    assert deliver(client, GOOD, json_headers(upper)).status_code == 200
    assert deliver(client, GOOD, json_headers(GOOD_MAC)).get_json()["duplicate"] is True
    assert expand(runtime) == 1


# --- replays and ignored events: 200 with a log line, stored once --------------------------


def msg_id_as_number(raw: bytes) -> bytes:
    return raw.replace(b'"msg_id":"4242"', b'"msg_id":4242')


REPLAYS: dict[str, Callable[[], tuple[bytes, bytes]]] = {
    "the same delivery twice": lambda: (event(), event()),
    "same msg_id, other text": lambda: (event(), event(text="<script>alert(1)</script>")),
    "same msg_id, another sender": lambda: (event(), event(user="1234567890123456789")),
    "msg_id as a number, then as a string": lambda: (
        msg_id_as_number(event(msg_id="4242")),
        event(msg_id="4242"),
    ),
    "msg_id padded with spaces": lambda: (event(msg_id="m-7"), event(msg_id="  m-7  ")),
    "same msg_id, later timestamp": lambda: (event(), event(timestamp="1718009999999")),
}


@pytest.mark.parametrize("case", REPLAYS.values(), ids=REPLAYS.keys())
@pytest.mark.parametrize("expanded_between", [False, True], ids=["pending", "expanded"])
def test_a_replayed_msg_id_is_200_logged_and_stored_once(
    client: FlaskClient,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    case: Callable[[], tuple[bytes, bytes]],
    expanded_between: bool,
) -> None:
    first, replay = case()
    assert deliver(client, first, signed_headers(first)).status_code == 200
    if expanded_between:
        assert expand(runtime) == 1
    before = snapshot(runtime)
    caplog.set_level(logging.INFO, logger="tipline.public.webhook")
    response = deliver(client, replay, {**signed_headers(replay), "num_retry": "1"})
    assert response.status_code == 200 and response.get_json() == {"ok": True, "duplicate": True}
    assert "webhook duplicate delivery ignored" in [r.getMessage() for r in caplog.records]
    assert_unchanged(runtime, before)
    expand(runtime)
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(InboundEvent)) == 1
        assert db.scalar(select(func.count()).select_from(Message)) == 1


def test_concurrent_replays_store_one_event(runtime: Runtime, sim: str) -> None:
    """Eight copies of one delivery at once, through a real threaded server."""
    raw = event(msg_id="race-1")
    headers = signed_headers(raw)
    statuses: list[int] = []
    answers: list[dict[str, Any]] = []

    def post() -> None:
        response = httpx.post(f"{sim}/zalo/webhook", content=raw, headers=headers, timeout=30)
        statuses.append(response.status_code)
        answers.append(response.json())

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert sum(1 for a in answers if a.get("duplicate")) == 7
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(InboundEvent)) == 1


IGNORED_NAMES = {
    "a newline forging a log line": "follow\nwebhook stored a text event",
    "HTML": "<img src=x onerror=alert(1)>",
    "10,000 characters": "x" * 10_000,
    "SQL": "user_send_text' OR '1'='1",
}


@pytest.mark.parametrize("name", IGNORED_NAMES.values(), ids=IGNORED_NAMES.keys())
def test_unknown_hostile_event_names_are_a_logged_ignore(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    raw = body(event_name=name)
    before = snapshot(runtime)
    caplog.set_level(logging.INFO, logger="tipline.public.webhook")
    response = deliver(client, raw, signed_headers(raw))
    assert response.status_code == 200 and response.get_json() == {"ok": True, "ignored": True}
    lines = [r.getMessage() for r in caplog.records]
    ignored = [line for line in lines if line.startswith("webhook event")]
    assert len(ignored) == 1 and ignored[0].endswith(" ignored")
    assert "\n" not in ignored[0] and len(ignored[0]) < 120  # one line, bounded
    assert expand(runtime) == 0
    assert_unchanged(runtime, before)


@pytest.mark.parametrize(
    "given",
    ["<svg/onload=alert(1)>", "x" * 17, "IMAGE", 7],
    ids=["html", "17 characters", "upper case", "a number"],
)
def test_a_hostile_attachment_type_is_stored_as_the_events_kind(
    client: FlaskClient, runtime: Runtime, given: object
) -> None:
    """The type names the attachment to officers and fills a 16-character column: anything
    but a short lower-case word becomes the event's own kind, and expansion goes on."""
    raw = event(
        "user_send_image",
        msg_id="typed",
        attachments=[{"type": given, "payload": {"url": "https://f20.zdn.vn/a.jpg"}}],
    )
    assert deliver(client, raw, signed(raw)).status_code == 200
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        assert list(db.scalars(select(Attachment.kind))) == ["image"]
    assert deliver(client, GOOD, signed(GOOD)).status_code == 200
    assert expand(runtime) == 1
