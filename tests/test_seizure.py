"""Seizure: a copy of everything on disk, taken at any moment, gives away nothing it must not.

The threat. Someone copies every byte the server keeps at rest, at a moment of their choosing:
the database (SQLite's main file and WAL, free pages included; PostgreSQL's data directory
after ``CHECKPOINT``, ``pg_wal`` included, and a ``pg_basebackup``), Redis's RDB/AOF, the file
store, the logs, and every configuration secret (the data dir's ``secrets/``, the process
environment's ``TIPLINE_*`` values). What is only in memory (a process's keys, the volatile
key store: the transit epochs' private halves, the reply-address keys) is not in the copy.

From that copy, nothing may give back (each is a REQUIREMENT line of the failure message):

1. anything of a tip dispatched more than an hour before the copy (its messages, attachments,
   routing notes, its key, its words), not even with the keys in memory added (its transit
   epoch is gone: docs/threat-model.md, attackers 1 and 2);
2. an informant's Zalo id (``sender.id`` or ``user_id_by_app``) once their reply window has
   closed (7 days after their last message) or once they sent STOP/XÓA, not even with the
   keys in memory added (their address key is gone), nor an HMAC of it under a key of the
   copy (that confirms a guessed id);
3. an officer's private key, without that officer's password;
4. a web informant's IP address, at any time (nor an HMAC of it a key of the copy reproduces:
   2³² guesses recover it);
5. (regression) any Zalo id, or the web informant's passphrase, in plaintext in any byte.

The flow (tests/seizure/flow.py, in this process, on this run's backend): informant A reports
on Zalo with text, a photo and a location, follows up, and an officer answers through the
triage UI; informant B reports, then sends STOP; informant W uses the web form with a photo
from 203.0.113.77 and follows up at /tra-cuu; a new officer is half-way through first login.
Then eight days pass (:func:`advance`: past A's reply window and every dispatch's hour; the
transit epochs of then are retired and destroyed, A's address key expires) and informant C
reports, dispatched just now: inside the hour and inside the window.

The copy (tests/seizure/seize.py): everything stops (the workers ran in burst mode) and the
raw files are copied, then read back as an attacker would (the SQLite copy opened read-only, a
second PostgreSQL cluster started on the base backup, a second Redis loaded from the copied
dump). A first copy is taken right after W's report too, for requirements 4 and 5.

The search (tests/seizure/search.py) is black box about where keys live: it finds every
envelope, secret box and wrap in the raw bytes by its format (``keys.envelope``, formats 1 and
2; ``keys.secret_box``; ``keys.password``, ``keys.session``), collects every key and 32-byte
secret the copy holds (secret files, environment, base64 and raw values anywhere), and tries
every key on every envelope and every secret on every secret box, with every purpose and
binding of the sealing contract (``tipline.models.sealed_fields``), bindings filled from the
identifiers of the copied database; every key an opening gives (a grant, a key in a
plaintext, a wrap) joins the search, to a fixed point. Then the keys in memory at the moment
of the copy (:func:`keys_in_memory`) join it, to a fixed point again. The failure message
lists what opened: the field, its binding (the row), the key and where that key came from,
where the sealed bytes were.

Positive controls (a CONTROL line, before anything else, when one fails): with the keys in
memory, the same search opens C's tip, and C's reply address (a secret box) under its key
from the key store, giving C's Zalo id; given an officer's password (which no attacker has,
so nothing it opens is a finding), it opens the old tips through their unit's key and the
events' copies sealed to it, so "nothing opens" is not the search's blindness to unit-key
sealing; every sealed value of the copied database is also found by the raw-byte scan of its
files; every officer's password wrap is found and tried.

Run: ``TIPLINE_TEST_DATABASE=sqlite|postgresql python -m pytest tests/test_seizure.py``.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from keys import (
    FAST_TEST_COST,
    PrivateKey,
    PublicKey,
    generate_keypair,
    grant,
    seal,
    wrap_for_session,
    wrap_with_secret,
)
from keys.envelope import _HEADER as ENVELOPE_HEADER
from keys.envelope import FORMAT_VERSION, MAGIC, _info
from keys.suites import SUITES as PRODUCT_SUITES
from tests.conftest import COMMUNE_OA, OFFICER_PASSWORD
from tests.databases import BACKEND, Databases
from tests.postgres_server import PostgresServer
from tests.seizure import flow
from tests.seizure.flow import Informant, Story, run_worker_passes, say, shift_stored_times
from tests.seizure.hpke import SUITE_PARAMS
from tests.seizure.search import CONTROL, MEMORY, Identifiers, Search, identifiers_of_rows
from tests.seizure.seize import Blob, Seized, read_back, seize
from tests.seizure.verdict import (
    Verdict,
    as_time,
    from_control,
    from_copy,
    from_memory,
    hmac_findings,
    ip_encodings,
    keyed_digest_purposes,
    literal_findings,
    plaintext_findings,
    public_half,
    recovered_keys,
    tips_in_copy,
)
from tests.test_media import jpeg_with_gps
from tipline.config import Config
from tipline.keystore import PREFIX
from tipline.migrate import upgrade
from tipline.models.sealed_fields import REPLY_ADDRESS
from tipline.runtime import Runtime
from tipline.time_rules import ZALO_REPLY_WINDOW

CLIENT_IP = "203.0.113.77"
# The logs at rest are what the product writes at its most verbose (`tipline -v`: INFO).
LOG_LEVEL = logging.INFO
DISPATCH_HOUR = timedelta(hours=1)
ELAPSED = timedelta(days=8)  # past the 7-day reply window
assert ELAPSED > ZALO_REPLY_WINDOW

R_TIPS = "nothing of a tip dispatched more than an hour before the copy"
R_ZALO = "no Zalo id once its reply window closed or after STOP"
R_OFFICERS = "no officer's private key without the officer's password"
R_IP = "no web informant's IP address, at any time"
R_NEVER = "no Zalo id and no passphrase in plaintext at rest, ever (regression)"


# --- the hooks the key redesign extends ---------------------------------------------------


def advance(runtime: Runtime, delta: timedelta) -> None:
    """Let ``delta`` pass for the product.

    Every time the product stored moves ``delta`` into the past (the audit chain's excepted:
    it is append-only and nothing expires by it). The volatile key store lives through it as
    a running system's would: the workers, running all along, retire the old transit epochs
    (re-sealing what is still in flight, then deleting their keys), and every key whose time
    to live is ``delta`` or less (an informant's address key, 7 days after their last message)
    is gone. Then the worker's periodic passes run at the product's ``utcnow()`` (expansion,
    outbox relay, sweeper, retention, every queued job), so whatever the product destroys when
    time passes, by its own logic, is destroyed.
    """
    keystore = runtime.keystore
    lifetimes = {name: int(keystore.redis.pttl(PREFIX + name)) for name in keystore.contents()}
    shift_stored_times(runtime, delta)
    runtime.transit.rotate()  # a new epoch; the old ones re-sealed away and destroyed
    expired = [name for name, ms in lifetimes.items() if 0 <= ms <= delta.total_seconds() * 1000]
    keystore.delete(*expired)
    runtime.transit.forget_cached()
    run_worker_passes(runtime)


def keys_in_memory(runtime: Runtime) -> dict[str, object]:
    """The keys that exist only in memory at the moment of the copy (not in any copied byte):
    what the volatile key store holds (transit epochs' private halves, reply-address keys)."""
    held: dict[str, object] = {}
    for name, value in runtime.keystore.contents().items():
        if name.startswith("transit:"):
            held[f"key store {name}"] = PrivateKey.from_bytes(value)
        else:
            held[f"key store {name}"] = value
    return held


# --- a cluster of the test's own --------------------------------------------------------------


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PostgresServer | None]:
    """On PostgreSQL, a cluster holding this test's database alone: a copy of the run's shared
    cluster would hold every other test's data too (thousands of envelopes to search)."""
    if BACKEND != "postgresql":
        yield None
        return
    server = PostgresServer.create()
    yield server
    server.destroy()


@pytest.fixture
def database_url(
    private_postgres: PostgresServer | None,
    databases: Databases,
    migrated_template: str,
    data_dir: Path,
) -> Iterator[str]:
    """This test's database: as everywhere on SQLite; in its own cluster on PostgreSQL."""
    if private_postgres is None:
        url = databases.copy(migrated_template, sqlite_file=data_dir / "tipline.db")
        yield url
        databases.drop(url)
        return
    url = private_postgres.create_database("seizure")
    upgrade(url)
    yield url
    private_postgres.drop_database("seizure")


# --- the story ------------------------------------------------------------------------------


def tell(
    app: Flask,
    client: FlaskClient,
    runtime: Runtime,
    sim: str,
    units: dict[str, str],
    tmp: Path,
    take_early_copy: Callable[[], None],
) -> Story:
    """The flow up to the moment of the copy (see the module's docstring)."""
    runtime.config = runtime.config.with_overrides(pow_bits=flow.BITS)
    story = Story(
        window_closed=Informant(
            "A (reply window closed)", "7391045528810460001", ["SZ-A1-vay", "SZ-A2-hung"]
        ),
        stopped=Informant("B (sent STOP)", "7391045528810460002", ["SZ-B1-danhbac"]),
        web=Informant("W (web form)", None, ["SZ-W1-matuy", "SZ-W2-bienso"]),
        live=Informant("C (inside the hour and the window)", "7391045528810460003", ["SZ-C1-trom"]),
        client_ip=CLIENT_IP,
    )
    known: set[str] = set()
    a, b, w, c = story.window_closed, story.stopped, story.web, story.live

    say(client, a, text=f"Ổ nhóm cho vay nặng lãi ở ấp Tân Hòa, {a.markers[0]}")
    run_worker_passes(runtime)
    flow.note_receipt(runtime, a, known)
    photo = flow.upload_photo(sim, tmp, jpeg_with_gps())
    a.markers.append(photo.url.rsplit("/", 1)[-1])  # the CDN address, in the attachment source
    say(client, a, image=photo)
    say(client, a, location=(9.177713, 105.144417))
    a.markers.append("105.144417")
    say(client, a, text=f"Người cầm đầu tên là Hùng, {a.markers[1]}")
    run_worker_passes(runtime)

    say(client, b, text=f"Đánh bạc ở quán cà phê Hoa Sữa, {b.markers[0]}")
    run_worker_passes(runtime)
    flow.note_receipt(runtime, b, known)
    say(client, b, text="STOP")
    run_worker_passes(runtime)

    code, story.passphrase = flow.web_report(
        client, runtime, w, CLIENT_IP, f"Có người bán ma túy ở chợ, {w.markers[0]}", jpeg_with_gps()
    )
    known.add(code)
    take_early_copy()  # the moment the web informant's request is freshest
    run_worker_passes(runtime)
    flow.web_follow_up(client, CLIENT_IP, code, story.passphrase, f"Biển số 69B1, {w.markers[1]}")
    run_worker_passes(runtime)

    reply = "Bạn biết tên người cầm đầu không? SZ-R1-hoi"
    a.markers.append("SZ-R1-hoi")
    officer = app.test_client()
    flow.officer_replies(officer, runtime, units["totp:canbo"], flow.tip_of(runtime, a), reply)
    run_worker_passes(runtime)
    flow.start_enrolment(app.test_client(), runtime, OFFICER_PASSWORD + " mới")

    advance(runtime, ELAPSED)

    say(client, c, text=f"Trộm xe máy ở ấp 3, {c.markers[0]}")
    run_worker_passes(runtime)
    flow.note_receipt(runtime, c, known)
    return story


# --- the search and the verdict -----------------------------------------------------------


def logs_at_rest(caplog: pytest.LogCaptureFixture) -> str:
    """What Tipline's processes would have written to their logs, at the most verbose level
    they offer (``tipline -v``: INFO). The simulator's access lines are Zalo's side: left out."""
    line = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    return "\n".join(
        line.format(record)
        for record in caplog.records
        if record.levelno >= LOG_LEVEL
        and not (record.name == "werkzeug" and "/_sim/" in record.getMessage())
    )


def configured_secrets(search: Search, seized: Seized) -> None:
    """Give the search what the copy holds as configuration: secret files, the environment."""
    for path in seized.files:
        if {"secrets", "secret-files"} & set(path.relative_to(seized.root).parts):
            search.add_string(path.read_text(errors="replace").strip(), f"copy: {path.name}")
    for variable, value in seized.env.items():
        search.add_string(value, f"environment: {variable}")


def searched(
    seized: Seized, keys_in_memory: dict[str, object], passwords: dict[str, str]
) -> Search:
    """The attacker's search of the copy, to a fixed point; then again with ``keys_in_memory``
    added (what only they open is labelled ``in memory: …``, see verdict.from_copy); then
    again with ``passwords``, which no attacker has (labelled ``control only: …``)."""
    search = Search(seized.blobs(), identifiers_of_rows(seized.tables))
    configured_secrets(search, seized)
    search.run()
    for label, value in keys_in_memory.items():
        source = MEMORY + label
        if isinstance(value, PrivateKey):
            search.add_key(value, source)
        elif isinstance(value, bytes):
            search.add_key(value, source)
            search.add_secret(value, source)
        elif isinstance(value, str):
            search.add_string(value, source)
    search.run()
    for label, password in passwords.items():
        search.add_string(password, CONTROL + label)
    search.run()
    return search


OPENED = "opened by the copy's keys"
OPENED_LIVE = "opened once the keys in memory are added too (a running server's, attacker 2)"
KEYS = "private keys recovered"
KEYS_LIVE = "private keys recovered once the keys in memory are added too"
HMACS = "HMACs a key of the copy reproduces"
BYTES = "in the copy's bytes as they are"


def judge(seized: Seized, story: Story, search: Search, config: Config) -> Verdict:
    verdict = Verdict()
    from_the_copy = [o for o in search.openings if from_copy(o.key)]
    with_memory = [o for o in search.openings if from_memory(o.key)]
    with_password = [o for o in search.openings if from_control(o.key)]
    taken = seized.taken_at
    tips = {t.who.name: t for t in tips_in_copy(seized.tables, [*story.old, story.live])}
    old = [tips[who.name] for who in story.old]
    live = tips[story.live.name]

    # The story is what it says, by the product's own logic, in the copy itself.
    for tip in old:
        dispatched = as_time(tip.row["dispatched_at"])
        assert dispatched is not None and dispatched < taken - DISPATCH_HOUR, tip.label
    dispatched = as_time(live.row["dispatched_at"])
    assert dispatched is not None and dispatched > taken - DISPATCH_HOUR, live.label
    # One reply address per informant alias (STOP cuts the tips' link to it, not the alias).
    addresses = {r["informant_alias"]: r for r in seized.tables["reply_addresses"]}
    for who in (story.window_closed, story.stopped):
        address = addresses[tips[who.name].row["informant_alias"]]
        last = as_time(address["last_inbound_at"])
        assert last is not None and last < taken - ZALO_REPLY_WINDOW, who.name
    stopped = addresses[tips[story.stopped.name].row["informant_alias"]]
    assert stopped["destroyed_at"] is not None, "STOP did not destroy the reply address"
    assert tips[story.stopped.name].row["informant_stopped_at"] is not None, "STOP not recorded"

    # 1. Tips dispatched over an hour ago: nothing that is part of them opens, not even with
    #    the keys in memory (their epochs are gone), their keys are not recovered, their words
    #    are in no byte.
    for tip in old:
        concerning = [f"{tip.label}: {o.describe()}" for o in from_the_copy if tip.concerns(o)]
        verdict.add(R_TIPS, OPENED, concerning)
        concerning = [f"{tip.label}: {o.describe()}" for o in with_memory if tip.concerns(o)]
        verdict.add(R_TIPS, OPENED_LIVE, concerning)
    tip_keys = {bytes(t.row["public_key"]): t.label for t in old}
    verdict.add(R_TIPS, KEYS, recovered_keys(search, tip_keys))
    for tip in old:
        words = {f"{tip.label}: the words {m!r}": m.encode() for m in tip.who.markers}
        verdict.add(R_TIPS, BYTES, literal_findings(search, words))

    # 2. The Zalo ids of the informant whose window closed and of the one who sent STOP: in
    #    nothing the copy opens, and no HMAC of them under a key of the copy (which confirms
    #    a guessed id).
    app_id = config.zalo_app_id
    gone = {
        f"{who.name}'s Zalo id {zalo_id}": zalo_id.encode()
        for who in (story.window_closed, story.stopped)
        for zalo_id in who.zalo_ids(app_id)
    }
    verdict.add(R_ZALO, OPENED, plaintext_findings(from_the_copy, gone))
    verdict.add(R_ZALO, OPENED_LIVE, plaintext_findings(with_memory, gone))
    oa_ids = {r["oa_id"] for r in seized.tables["official_accounts"]} | {COMMUNE_OA}
    # The forms an attacker reads in the product's source: the id, or "user:" and the id,
    # each alone or after an OA id and a NUL (the informant alias).
    guesses = {
        f"{name} (as {'' if oa is None else f'OA {oa}, NUL, '}{prefix}id)": (
            ("" if oa is None else f"{oa}\x00") + prefix + zalo_id.decode()
        )
        for name, zalo_id in gone.items()
        for prefix in ("", "user:")
        for oa in [None, *sorted(oa_ids)]
    }
    verdict.add(R_ZALO, HMACS, hmac_findings(search, guesses, keyed_digest_purposes()))

    # 3. Officers' keys: none recovered, no wrap opened, without the officer's password (the
    #    search never tries the passwords: the attacker does not know them).
    officers = {
        bytes(r["public_key"]): f"officer {r['username']}" for r in seized.tables["officers"]
    }
    wraps = [o.describe() for o in from_the_copy if o.field.startswith("OFFICER_KEY")]
    verdict.add(R_OFFICERS, OPENED, wraps)
    verdict.add(R_OFFICERS, KEYS, recovered_keys(search, officers))
    # Nor with the keys in memory: no officer's key is in the key store.
    wraps = [o.describe() for o in with_memory if o.field.startswith("OFFICER_KEY")]
    verdict.add(R_OFFICERS, OPENED_LIVE, wraps)
    verdict.add(R_OFFICERS, KEYS_LIVE, recovered_keys(search, officers, from_memory))

    # 4 and 5 (this copy; the early one: judge_early).
    add_ip_findings(verdict, search, story.client_ip)
    verdict.add(R_NEVER, BYTES, never_at_rest(search, story, app_id))

    # Positive controls. With the keys held in memory, the same search opens what is still
    # live: the tip dispatched just now, the live informant's Zalo id, and that from their
    # reply address (a secret box) with its key from the key store.
    if not any(live.concerns(o) for o in with_memory):
        verdict.control("the keys in memory open the tip dispatched just now", [live.label])
    assert story.live.zalo_id is not None
    live_id = {"id": story.live.zalo_id.encode()}
    if not plaintext_findings(with_memory, live_id):
        verdict.control("the keys in memory give the live informant's Zalo id", [story.live.name])
    if not plaintext_findings([o for o in with_memory if o.field == "REPLY_ADDRESS"], live_id):
        verdict.control(
            "the live informant's reply address (a secret box) opens with its key in memory",
            [f"{story.live.name}: {len(search.boxes)} secret box(es) found, none opened so"],
        )
    # What a transit epoch's key opens names that epoch in its header (the key version).
    transit = MEMORY + "key store transit:"
    verdict.control(
        "an envelope opened with a transit epoch's key names that epoch in its header",
        [
            o.describe()
            for o in with_memory
            if o.key.startswith(transit) and o.key_version != int(o.key.removeprefix(transit))
        ],
    )
    # An officer's password (which the attacker does not have) opens the old tips through
    # their units' keys, and the events' second copies sealed to those keys: the search does
    # open what is sealed to unit keys when it holds one.
    verdict.control(
        "an officer's password opens the old tips through their unit's key",
        [tip.label for tip in old if not any(tip.concerns(o) for o in with_password)],
    )
    if not any(o.field == "INBOUND_EVENT_FALLBACK" for o in with_password):
        verdict.control(
            "an officer's password opens the events' copies sealed to their unit's key",
            ["no INBOUND_EVENT_FALLBACK opened"],
        )
    # The raw-byte scan sees the database: every sealed value read back is also in its files.
    verdict.control(
        "every sealed value of the copied database is found in its raw files",
        [
            g.occurrences[0].where
            for g in [*search.groups.values(), *search.boxes.values()]
            if g.live and all(o.blob.row is not None for o in g.occurrences)
        ],
    )
    raw_wraps = {w.data for w in search.wraps.values() if not w.where.startswith("read back")}
    verdict.control(
        "every officer's password wrap is found in the copy's raw bytes (and tried)",
        [
            f"officer {r['username']}"
            for r in seized.tables["officers"]
            if bytes(r["key_wrapped_by_password"]) not in raw_wraps
        ],
    )
    verdict.notes.append(
        f"(search: {search.stats()}, {search.seconds:.1f} s; opened {len(from_the_copy)} with "
        f"the copy's keys, {len(with_memory)} more with the keys in memory, "
        f"{len(with_password)} more with an officer's password)"
    )
    return verdict


def add_ip_findings(verdict: Verdict, search: Search, address: str, when: str = "") -> None:
    """4. The web informant's IP address: in no byte, in nothing opened, in no HMAC."""
    encodings = ip_encodings(address)
    opened = [o for o in search.openings if from_copy(o.key)]
    verdict.add(R_IP, BYTES, [when + f for f in literal_findings(search, encodings)])
    verdict.add(R_IP, OPENED, [when + f for f in plaintext_findings(opened, encodings)])
    opened = [o for o in search.openings if from_memory(o.key)]
    verdict.add(R_IP, OPENED_LIVE, [when + f for f in plaintext_findings(opened, encodings)])
    hmacs = hmac_findings(search, {address: address}, keyed_digest_purposes())
    verdict.add(R_IP, HMACS, [when + f for f in hmacs])


def never_at_rest(search: Search, story: Story, app_id: str) -> list[str]:
    """5. Every Zalo id of the story (as text, and as a number: 8 bytes, either order), and
    the web informant's passphrase, in no byte of the copy."""
    needles = {"the web informant's passphrase": story.passphrase.encode()}
    for who in (*story.old, story.live):
        for zalo_id in who.zalo_ids(app_id):
            needles[f"{who.name}'s Zalo id {zalo_id}"] = zalo_id.encode()
            number = int(zalo_id)
            if number < 2**64:
                as_number = f"{who.name}'s Zalo id {zalo_id} as 8 bytes"
                needles[as_number + ", big-endian"] = number.to_bytes(8, "big")
                needles[as_number + ", little-endian"] = number.to_bytes(8, "little")
    return literal_findings(search, needles)


def judge_early(seized: Seized, story: Story, later: Search, app_id: str, verdict: Verdict) -> None:
    """The copy taken right after the web report: requirements 4 and 5 on it too. Its
    envelopes are opened as far as its own keys go (pairs the later copy's search tried
    already are not tried again)."""
    search = Search(seized.blobs(), later.ids, tried=later.tried)
    configured_secrets(search, seized)
    search.run()
    when = "(the copy taken right after the web report) "
    add_ip_findings(verdict, search, story.client_ip, when)
    verdict.add(R_NEVER, BYTES, [when + f for f in never_at_rest(search, story, app_id)])


# --- the tests ------------------------------------------------------------------------------


def test_a_copy_of_everything_at_rest_gives_away_nothing_it_must_not(
    app: Flask,
    client: FlaskClient,
    runtime: Runtime,
    config: Config,
    env: dict[str, str],
    units: dict[str, str],
    sim: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    private_postgres: PostgresServer | None,
) -> None:
    caplog.set_level(LOG_LEVEL)
    postgres = private_postgres
    started = time.monotonic()
    early: list[Seized] = []

    def take_early_copy() -> None:
        copy = seize(
            runtime,
            env,
            logs_at_rest(caplog),
            tmp_path / "seized-early",
            postgres,
            base_backup=False,
        )
        early.append(copy)

    story = tell(app, client, runtime, sim, units, tmp_path, take_early_copy)
    told = time.monotonic()

    # Everything has stopped (the workers ran in burst mode); the copy, then reading it back.
    seized = seize(runtime, env, logs_at_rest(caplog), tmp_path / "seized", postgres)
    read_back(seized, tmp_path / "scratch", config.database_url, postgres)
    copied = time.monotonic()

    passwords = {f"officer {flow.OFFICER}'s password": OFFICER_PASSWORD}  # the controls only
    search = searched(seized, keys_in_memory(runtime), passwords)
    verdict = judge(seized, story, search, config)
    judge_early(early[0], story, search, config.zalo_app_id, verdict)
    verdict.notes.append(
        f"(flow {told - started:.1f} s, copy and read-back {copied - told:.1f} s, "
        f"search and verdict {time.monotonic() - copied:.1f} s, {BACKEND})"
    )
    if not verdict.ok:
        pytest.fail(verdict.report(), pytrace=False)
    print("\n".join(verdict.notes))  # run times and the search's size (pytest -rP shows them)


def _sealed_as_format_1(public: PublicKey, plaintext: bytes, purpose: str, binding: str) -> bytes:
    """An envelope as ``keys.seal`` wrote it before format 2: the plaintext as is, no length
    and no padding (still read by the product: rows sealed before the upgrade)."""
    header = ENVELOPE_HEADER.pack(MAGIC, FORMAT_VERSION, public.suite_id, public.version)
    suite = PRODUCT_SUITES[public.suite_id].hpke_suite
    return header + suite.encrypt(plaintext, public._native(), info=_info(header, purpose, binding))


def test_the_search_opens_what_the_product_seals_wherever_it_lies() -> None:
    """The attacker's side agrees with ``keys``: envelopes (padded, format 2; and format 1)
    with a known end, embedded in other bytes with no length, cut short, in base64; a grant and
    the key it gives; secret boxes whole, embedded with no length and cut short, under a secret
    found in the bytes; an Argon2id wrap and a session wrap opened with a secret found in the
    bytes. Every suite the product can seal with is one the search can open."""
    assert set(SUITE_PARAMS) >= set(PRODUCT_SUITES), "a suite the seizure search cannot open"
    key, holder, officer = generate_keypair(), generate_keypair(), generate_keypair()
    body = '{"text": "SZ-SELF một tin báo", "event": "user_send_text"}'.encode()
    alias = "ab" * 32
    whole = seal(key.public_key, body, purpose="message", binding="message:aaaaaaaaaaaaaaaa")
    inside = seal(key.public_key, body, purpose="reply_address", binding=f"reply_address:{alias}")
    cut = seal(key.public_key, body * 4, purpose="message", binding="message:bbbbbbbbbbbbbbbb")
    encoded = seal(key.public_key, body, purpose="message", binding="message:cccccccccccccccc")
    old = _sealed_as_format_1(key.public_key, body, "message", "message:gggggggggggggggg")
    old_cut = _sealed_as_format_1(key.public_key, body * 4, "message", "message:hhhhhhhhhhhhhhhh")
    granted = grant(holder, key.public_key, binding="grant:tip:7>transit:0")
    by_holder = seal(holder.public_key, body, purpose="routing", binding="tip:dddddddddddddddd")
    wrapped = wrap_with_secret(officer, "a found secret", cost=FAST_TEST_COST, binding="decoy")
    cookie = bytes(range(32))
    session = wrap_for_session(officer, cookie, binding="eeeeeeeeeeeeeeee")
    box_key, other_alias = bytes(range(100, 132)), "cd" * 32
    address = b'{"kind": "user", "user_id": "7391045528810469999"}'
    boxed = REPLY_ADDRESS.seal(box_key, address, informant_alias=alias)
    boxed_inside = REPLY_ADDRESS.seal(box_key, address, informant_alias=other_alias)
    boxed_cut = REPLY_ADDRESS.seal(box_key, address * 2, informant_alias=alias)
    filler = bytes(range(256)) * 4
    blobs = [
        Blob("whole", whole, whole_value=True),
        Blob("page", filler + alias.encode() + inside + b"\x00\x17next column" + filler),
        Blob("cut", filler + cut[: len(cut) // 2]),
        Blob("json", b'{"v": "' + base64.b64encode(encoded) + b'"}'),
        Blob("format 1", filler + old + b"\x00\x17next column" + filler),
        Blob("format 1 cut", filler + old_cut[: len(old_cut) // 2]),
        Blob("grants", filler + b"tip" + granted + b"2026-01-01 00:00:00" + filler),
        Blob("routing", filler + by_holder + filler),
        Blob("wraps", filler + wrapped + filler),
        Blob("session", b'{"key": "' + base64.b64encode(session) + b'"}', whole_value=True),
        Blob("cookie jar", base64.b64encode(cookie), whole_value=True),
        Blob("box", boxed, whole_value=True),
        Blob("box page", filler + other_alias.encode() + boxed_inside + b"\x00\x02" + filler),
        Blob("box cut", filler + boxed_cut[: len(boxed_cut) - 40]),
        Blob("key store dump", base64.b64encode(box_key), whole_value=True),
    ]
    ids = Identifiers()
    for public_id in "abcdgh":
        ids.add("message_public_id", public_id * 16)
    ids.add("tip_public_id", "dddddddddddddddd")
    ids.add("officer_public_id", "eeeeeeeeeeeeeeee")
    ids.add("informant_alias", alias)
    ids.ints_by_kind["tips"] = {7}
    search = Search(blobs, ids)
    search.add_key(key, "the test's key")
    search.add_string("a found secret", "the test's secret")
    search.run()
    opened = {o.where.split(" @")[0]: o for o in search.openings}
    assert {"whole", "page", "cut", "grants", "routing", "format 1", "format 1 cut"} <= set(
        opened
    ), opened
    assert opened["whole"].plaintext == body and opened["whole"].complete  # padding removed
    assert opened["page"].field == "LEGACY_REPLY_ADDRESS" and opened["page"].plaintext == body
    assert opened["cut"].field == "MESSAGE_BODY" and not opened["cut"].complete  # keystream
    assert opened["cut"].plaintext.startswith(body)
    assert opened["format 1"].plaintext == body and opened["format 1"].complete
    assert opened["format 1 cut"].plaintext.startswith(body)
    assert not opened["format 1 cut"].complete
    assert opened["routing"].key.startswith("KEY_GRANT [grant:tip:7>transit:0]")
    assert any(o.where.startswith("base64") and o.plaintext == body for o in search.openings)
    assert {o.field for o in search.openings} >= {"DECOY_WRAP", "OFFICER_KEY_SESSION_WRAP"}
    assert public_half(officer.to_bytes()[1:]) in {public_half(raw) for raw in search.keys}
    # Secret boxes: the key found (base64) in the copy opens each, wherever it lies; the
    # embedded one's alias comes from the bytes before it, the cut one is read without its tag.
    assert {"box", "box page", "box cut"} <= set(opened), opened
    for where, binding in (("box", alias), ("box page", other_alias)):
        assert opened[where].field == "REPLY_ADDRESS" and opened[where].complete, where
        assert opened[where].binding == f"reply_address:{binding}"
        assert opened[where].plaintext == address
    assert not opened["box cut"].complete and opened["box cut"].plaintext.startswith(address)
    assert opened["box"].key.startswith("base64 in key store dump")
