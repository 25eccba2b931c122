"""The hash chain: any single edit, deletion, insertion or swap is found (invariant 5).

Tampering goes around the append-only rules the way an attacker with the database would:
on SQLite by dropping the triggers, on PostgreSQL as the superuser with triggers off; then
plain SQL (tests.databases.raw). The chains live in copies of one filled database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from keys import chain_hash, generate_signing_key
from tests.databases import AUDIT_REFUSALS, INTEGRITY_ERRORS, REFUSED, Databases, raw
from tipline.audit import (
    AuditError,
    ChainBrokenError,
    actions,
    record,
    verify_chain,
    write_checkpoint,
)
from tipline.audit.chain import CHAINED, canonical
from tipline.cli import main
from tipline.db import make_engine, make_session_factory
from tipline.migrate import upgrade
from tipline.models import AuditEvent, Officer, Role
from tipline.models.audit_head import GENESIS_HASH
from tipline.runtime import Runtime

N_EVENTS = 12
COLUMNS = ", ".join(CHAINED)
SELECT_ROWS = f"SELECT seq, {COLUMNS} FROM audit_events ORDER BY seq"  # noqa: S608
INSERT_ROW = f"INSERT INTO audit_events (seq, {COLUMNS}, hash) VALUES ({', '.join('?' * 13)})"  # noqa: S608
SIGNER = generate_signing_key()


def staff(username: str, role: str = Role.OFFICER) -> Officer:
    """A transient officer: record() reads only its public id, username, role and unit."""
    return Officer(public_id=f"pid{username}", username=username, role=role)


def fill(url: str, n: int = N_EVENTS) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    for i in range(n):
        with sessions() as session, session.begin():
            if i % 3 == 0:
                record(session, action=actions.TIP_RECEIVED, object_id=f"tip{i}")
            else:
                record(
                    session,
                    action=actions.TIP_OPEN if i % 3 == 1 else actions.STATUS_CHANGE,
                    actor=staff(f"canbo{i % 2}"),
                    object_id=f"tip{i - 1}",
                    client_address="10.0.0.7",
                    detail={"status": "verifying"} if i % 3 == 2 else None,
                )
    engine.dispose()


_TEMPLATE_CHECKPOINTS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def chain_template(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The filled chain every test copies; nothing connects to it after this (PostgreSQL
    copies a database only while no one is connected to it)."""
    url = databases.create()
    upgrade(url)
    fill(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as session:  # the auditor's offline copy
        _TEMPLATE_CHECKPOINTS[url] = tmp_path_factory.mktemp("cp") / "cp.json"
        write_checkpoint(session, SIGNER, _TEMPLATE_CHECKPOINTS[url])
    engine.dispose()
    yield url
    databases.drop(url)


def verify_file(url: str, checkpoint: object = None) -> object:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return verify_chain(session, checkpoint)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def tamper(url: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    with raw(url) as db:
        for sql, params in statements:
            db.execute(sql, params)


def rows(url: str) -> list[tuple[object, ...]]:
    with raw(url) as db:
        return db.execute(SELECT_ROWS)


def scalar(url: str, sql: str, params: tuple[object, ...] = ()) -> object:
    with raw(url) as db:
        found = db.execute(sql, params)
    return found[0][0] if found else None


def rehash(path: str) -> None:
    """The strongest attacker: recompute every link and the head after the change."""
    previous = GENESIS_HASH
    updates = []
    for row in rows(path):
        previous = chain_hash(previous, canonical(int(row[0]), list(row[1:])))  # type: ignore[arg-type]
        updates.append(("UPDATE audit_events SET hash = ? WHERE seq = ?", (previous, row[0])))
    last = rows(path)[-1][0]
    tamper(
        path,
        *updates,
        ("UPDATE audit_head SET seq = ?, hash = ?", (last, previous)),
    )


EVENT_COLUMNS = ("id", "seq", *CHAINED, "hash")
INSERT_HEAD = "INSERT INTO audit_head (id, seq, hash) VALUES (?, ?, ?)"


@pytest.fixture
def copy(chain_template: str, databases: Databases) -> Iterator[Callable[[], str]]:
    """A fresh copy of the filled chain per call (a property test asks once per example).

    SQLite copies the file. On PostgreSQL a copy is a database (CREATE DATABASE … TEMPLATE,
    tenths of a second), so one is made per test and later calls put the audit tables back
    as they were, as the superuser: the tampering never reaches anything else, and the
    append-only triggers stay in force there (only the tampering connection bypasses them).
    """
    url = databases.copy(chain_template)
    if url.startswith("sqlite"):
        made = [url]

        def make() -> str:
            made.append(databases.copy(chain_template))
            databases.drop(made.pop(0))  # an example's copy is done with when the next comes
            return made[-1]
    else:
        select_events = f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_events ORDER BY id"  # noqa: S608
        with raw(url) as db:
            events = db.execute(select_events)
            head = db.execute("SELECT id, seq, hash FROM audit_head")
        made = [url]
        calls = iter(range(10**6))

        def make() -> str:
            if next(calls):
                insert = (
                    f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
                )
                tamper(
                    url,
                    ("DELETE FROM audit_events", ()),
                    ("DELETE FROM audit_head", ()),
                    *[(insert, row) for row in events],
                    *[(INSERT_HEAD, row) for row in head],
                )
                assert rows(url) == [row[1:-1] for row in events]
            return url

    yield make
    for url in made:
        databases.drop(url)


# --- the basics ----------------------------------------------------------------------------


def test_an_untouched_chain_verifies(copy: Callable[[], str]) -> None:
    result = verify_file(copy())
    assert result.ok and result.checked == N_EVENTS and result.head_seq == N_EVENTS  # type: ignore[attr-defined]


def test_triggers_refuse_updates_and_deletes(copy: Callable[[], str]) -> None:
    """Refused to the database's owner with triggers in force, and to the application.

    On PostgreSQL the application's role has lost UPDATE/DELETE/TRUNCATE on the events
    (privileges, checked before any trigger), and TRUNCATE is refused even to the superuser.
    """
    url = copy()
    postgres = url.startswith("postgresql")
    statements = [
        "UPDATE audit_events SET outcome = 'denied' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "UPDATE audit_head SET seq = 1",
        "DELETE FROM audit_head",
        *(["TRUNCATE audit_events", "TRUNCATE audit_head"] if postgres else []),
    ]
    for sql in statements:
        with pytest.raises(AUDIT_REFUSALS) as refused, raw(url, bypass_triggers=False) as db:
            db.execute(sql)
        assert "append-only" in str(refused.value) or "only moves forward" in str(refused.value)
    engine = make_engine(url)
    try:
        for sql in statements:
            with pytest.raises(DBAPIError) as denied, engine.begin() as connection:
                connection.exec_driver_sql(sql)
            if postgres:  # the privileges revoked, except moving the head (its trigger)
                moving_head = sql.startswith("UPDATE audit_head")
                expected = "only moves forward" if moving_head else "permission denied"
                assert expected in str(denied.value), sql
    finally:
        engine.dispose()
    assert verify_file(url).ok  # type: ignore[attr-defined]
    assert [row[0] for row in rows(url)] == list(range(1, N_EVENTS + 1))


def test_record_refuses_what_must_never_be_written(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        with pytest.raises(AuditError):  # an informant's or the system's address
            record(session, action=actions.TIP_RECEIVED, client_address="1.2.3.4")
        with pytest.raises(AuditError):
            record(session, action="tip_read_by_someone")
        with pytest.raises(AuditError):  # content does not fit in a detail
            record(
                session,
                action=actions.NOTE_ADDRESSED if False else actions.NOTE_ADDED,
                detail={"text": "Có người buôn bán ma túy\nở hẻm 12"},
            )
        with pytest.raises(AuditError):
            record(session, action=actions.NOTE_ADDED, detail={"Text Key": "x"})
        with pytest.raises(AuditError):
            record(session, action=actions.NOTE_ADDED, outcome="sort of")


def test_a_rolled_back_action_leaves_no_event_and_no_gap(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        record(session, action=actions.TIP_RECEIVED, object_id="a")
    with pytest.raises(RuntimeError), runtime.sessions() as session, session.begin():
        record(session, action=actions.TIP_RECEIVED, object_id="b")
        raise RuntimeError("the action failed")
    with runtime.sessions() as session, session.begin():
        event = record(session, action=actions.TIP_RECEIVED, object_id="c")
    assert event.seq == 2
    with runtime.sessions() as session:
        assert verify_chain(session).ok


def test_concurrent_writers_never_fork_the_chain(runtime: Runtime) -> None:
    """Eight threads, each its own connection and transactions, append at once."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                with runtime.sessions() as session, session.begin():
                    record(session, action=actions.TIP_RECEIVED, object_id=f"t{n}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with runtime.sessions() as session:
        result = verify_chain(session)
        seqs = list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
    assert result.ok, result.describe()
    assert seqs == list(range(1, 201))


# --- one of each kind of tampering, named precisely ----------------------------------------


def test_plain_sql_edit_names_the_event(copy: Callable[[], str]) -> None:
    path = copy()
    tamper(path, ("UPDATE audit_events SET actor_name = 'someone_else' WHERE seq = 5", ()))
    result = verify_file(path)
    assert not result.ok and result.first_bad_seq == 5  # type: ignore[attr-defined]


def test_deleting_the_newest_events_is_found(copy: Callable[[], str]) -> None:
    path = copy()
    tamper(path, ("DELETE FROM audit_events WHERE seq >= ?", (N_EVENTS - 1,)))
    result = verify_file(path)
    assert not result.ok and result.first_bad_seq == N_EVENTS - 1  # type: ignore[attr-defined]


def test_an_event_appended_behind_the_heads_back_is_found(copy: Callable[[], str]) -> None:
    path = copy()
    last = rows(path)[-1]
    forged = [f"forged{N_EVENTS + 1}", *last[2:]]
    head = scalar(path, "SELECT hash FROM audit_head")
    link = chain_hash(head, canonical(N_EVENTS + 1, forged))  # type: ignore[arg-type]
    tamper(
        path,
        (
            INSERT_ROW,
            (N_EVENTS + 1, *forged, link),
        ),
    )
    result = verify_file(path)
    assert not result.ok and result.first_bad_seq == N_EVENTS + 1  # type: ignore[attr-defined]


def test_a_rewritten_history_passes_the_chain_but_not_the_checkpoint(
    copy: Callable[[], str], tmp_path: Path
) -> None:
    path = copy()
    engine = make_engine(path)
    with make_session_factory(engine)() as session:
        checkpoint = write_checkpoint(session, SIGNER, tmp_path / "cp.json")
    engine.dispose()
    assert checkpoint.seq == N_EVENTS
    assert verify_file(path, tmp_path / "cp.json").ok  # type: ignore[attr-defined]
    tamper(path, ("UPDATE audit_events SET object_id = 'another-tip' WHERE seq = 3", ()))
    rehash(path)
    assert verify_file(path).ok  # type: ignore[attr-defined]  # why checkpoints exist
    result = verify_file(path, tmp_path / "cp.json")
    assert not result.ok and result.first_bad_seq == N_EVENTS  # type: ignore[attr-defined]
    # An edited checkpoint file is refused too.
    edited = (tmp_path / "cp.json").read_text().replace(f'"seq": {N_EVENTS}', '"seq": 2')
    (tmp_path / "cp2.json").write_text(edited)
    assert "signature" in str(verify_file(path, tmp_path / "cp2.json").reason)  # type: ignore[attr-defined]


def test_no_checkpoint_is_signed_over_a_broken_chain(copy: Callable[[], str]) -> None:
    path = copy()
    tamper(path, ("DELETE FROM audit_events WHERE seq = 4", ()))
    engine = make_engine(path)
    with make_session_factory(engine)() as session, pytest.raises(ChainBrokenError):
        write_checkpoint(session, SIGNER)
    engine.dispose()


# --- properties: any single change -------------------------------------------------------

EDITABLE = ("seq", *CHAINED, "hash")
VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-5, max_value=10**9),
    st.text(max_size=20),
    st.sampled_from(["", "ok", "denied", actions.TIP_OPEN, "tip1", "\x00", "\x1f"]),
)
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(
    seq=st.integers(1, N_EVENTS),
    column=st.sampled_from(EDITABLE),
    value=VALUES,
    recompute=st.booleans(),
)
def test_any_single_edit_is_detected(
    copy: Callable[[], str],
    checkpoint: Path,
    seq: int,
    column: str,
    value: object,
    recompute: bool,
) -> None:
    path = copy()
    read = f"SELECT {column} FROM audit_events WHERE seq = ?"  # noqa: S608
    old = scalar(path, read, (seq,))
    assume(old != value or type(old) is not type(value))
    try:
        tamper(path, (f"UPDATE audit_events SET {column} = ? WHERE seq = ?", (value, seq)))  # noqa: S608
    except REFUSED:
        assume(False)  # NOT NULL, UNIQUE or the column's type refused it: nothing changed
    new = scalar(path, read, (value if column == "seq" else seq,))
    assume(new != old or type(new) is not type(old))  # stored as it was ("5" into an integer)
    if recompute:
        assume(column not in ("seq", "hash"))
        try:
            rehash(path)
        except (TypeError, ValueError):
            assume(False)  # not even the attacker can hash a non-text field
        result = verify_file(path, checkpoint)
        assert not result.ok  # type: ignore[attr-defined]
    else:
        result = verify_file(path)
        assert not result.ok, (column, value)  # type: ignore[attr-defined]
        assert result.first_bad_seq == seq, result.describe()  # type: ignore[attr-defined]


@PROPERTY
@given(seq=st.integers(1, N_EVENTS), recompute=st.booleans())
def test_any_single_deletion_is_detected(
    copy: Callable[[], str], checkpoint: Path, seq: int, recompute: bool
) -> None:
    path = copy()
    tamper(path, ("DELETE FROM audit_events WHERE seq = ?", (seq,)))
    if recompute:  # and close the gap, as a careful attacker would
        tamper(  # through negative numbers: PostgreSQL checks UNIQUE row by row
            path,
            ("UPDATE audit_events SET seq = 1 - seq WHERE seq > ?", (seq,)),
            ("UPDATE audit_events SET seq = -seq WHERE seq < 0", ()),
        )
        rehash(path)
        assert not verify_file(path, checkpoint).ok  # type: ignore[attr-defined]
    else:
        result = verify_file(path)
        assert not result.ok and result.first_bad_seq == seq  # type: ignore[attr-defined]


@PROPERTY
@given(
    seq=st.integers(1, N_EVENTS),
    action=st.sampled_from(sorted(actions.ALL)),
    recompute=st.booleans(),
)
def test_any_single_insertion_is_detected(
    copy: Callable[[], str], checkpoint: Path, seq: int, action: str, recompute: bool
) -> None:
    """A forged event put at position ``seq``; later events move up one, as they must."""
    path = copy()
    before = rows(path)
    template = list(before[seq - 1][1:])
    template[0] = f"forged{seq}"
    template[CHAINED.index("action")] = action
    previous = scalar(path, "SELECT hash FROM audit_events WHERE seq = ?", (seq - 1,))
    link = chain_hash(previous or GENESIS_HASH, canonical(seq, template))  # type: ignore[arg-type]
    shift = [
        ("UPDATE audit_events SET seq = ? WHERE seq = ?", (-s, s)) for s in range(seq, N_EVENTS + 1)
    ] + [
        ("UPDATE audit_events SET seq = ? WHERE seq = ?", (s + 1, -s))
        for s in range(seq, N_EVENTS + 1)
    ]
    tamper(
        path,
        *shift,
        (
            INSERT_ROW,
            (seq, *template, link),
        ),
    )
    if recompute:
        rehash(path)
        assert not verify_file(path, checkpoint).ok  # type: ignore[attr-defined]
    else:
        result = verify_file(path)
        # The forged event links correctly to its predecessor; the one it displaced does not
        # (or, at the very end, the forged event is not the head's).
        assert not result.ok, result.describe()  # type: ignore[attr-defined]
        assert result.first_bad_seq == (seq + 1 if seq < N_EVENTS else seq)  # type: ignore[attr-defined]


@PROPERTY
@given(
    pair=st.lists(st.integers(1, N_EVENTS), min_size=2, max_size=2, unique=True),
    recompute=st.booleans(),
)
def test_any_swap_is_detected(
    copy: Callable[[], str], checkpoint: Path, pair: list[int], recompute: bool
) -> None:
    i, j = sorted(pair)
    path = copy()
    tamper(
        path,
        ("UPDATE audit_events SET seq = -1 WHERE seq = ?", (i,)),
        ("UPDATE audit_events SET seq = ? WHERE seq = ?", (i, j)),
        ("UPDATE audit_events SET seq = ? WHERE seq = -1", (j,)),
    )
    if recompute:
        rehash(path)
        assert not verify_file(path, checkpoint).ok  # type: ignore[attr-defined]
    else:
        result = verify_file(path)
        assert not result.ok and result.first_bad_seq == i  # type: ignore[attr-defined]


@pytest.fixture
def checkpoint(chain_template: str) -> Path:
    """The checkpoint signed over the untouched chain, as an auditor keeps it offline."""
    return _TEMPLATE_CHECKPOINTS[chain_template]


# --- the command line ----------------------------------------------------------------------


def test_cli_verify_and_checkpoint(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime, tmp_path: Path
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with runtime.sessions() as session, session.begin():
        for i in range(5):
            record(session, action=actions.TIP_RECEIVED, object_id=f"tip{i}")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("verify")
    assert code == 0 and "intact" in out, out
    code, out = run("checkpoint", "--out", str(tmp_path / "cp.json"))
    assert code == 0 and "event #6" in out, out  # 5 events and the AUDIT_VERIFY above
    assert run("checkpoint", "--out", str(tmp_path / "cp.json"))[0] != 0  # never overwritten
    code, out = run("verify", "--from-checkpoint", str(tmp_path / "cp.json"))
    assert code == 0 and "matches checkpoint at #6" in out, out
    db_url = env["TIPLINE_DATABASE_URL"]
    runtime.engine.dispose()
    tamper(db_url, ("UPDATE audit_events SET outcome = 'denied' WHERE seq = 3", ()))
    code, out = run("verify")
    assert code == 1 and "#3" in out, out
    public = scalar(db_url, "SELECT public_id FROM audit_events WHERE seq = 3")
    assert isinstance(public, str) and public in out
    with runtime.sessions() as session:
        kinds = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    assert kinds[5:] == [
        actions.AUDIT_VERIFY,
        actions.AUDIT_CHECKPOINT,
        actions.AUDIT_VERIFY,
        actions.AUDIT_VERIFY,
    ]


def test_rows_checked_at_a_unique_seq(copy: Callable[[], str]) -> None:
    """Two rows cannot claim the same place: the schema refuses a duplicate seq."""
    path = copy()
    with pytest.raises(INTEGRITY_ERRORS):
        tamper(path, ("UPDATE audit_events SET seq = 2 WHERE seq = 3", ()))
    assert IntegrityError  # the ORM raises its own kind for the same reason


@pytest.mark.parametrize(
    "edit",
    [
        None,
        ("UPDATE audit_events SET actor_name = NULL WHERE seq = 2", ()),
        ("UPDATE audit_events SET detail_json = '{}' WHERE seq = 3", ()),
        ("UPDATE audit_events SET at = '2020-01-01 00:00:00.000001' WHERE seq = 4", ()),
        ("UPDATE audit_events SET client_address = ? WHERE seq = 5", ("10.0.0.7\x1f",)),
        ("DELETE FROM audit_events WHERE seq = 6", ()),
    ],
    ids=["untouched", "nulled", "detail", "time", "separator", "deleted"],
)
def test_the_portable_verifier_agrees_with_the_fast_one(
    copy: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    edit: tuple[str, tuple[object, ...]] | None,
) -> None:
    """SQLite and PostgreSQL verify with a query of their own (NULLs, times in SQL); the
    portable row-by-row walk must reach the same verdict on the same database."""
    from tipline.audit import chain

    path = copy()
    if edit is not None:
        tamper(path, edit)
    fast = verify_file(path)
    monkeypatch.setattr(chain, "_FAST", False)
    portable = verify_file(path)
    assert fast == portable
    assert fast.ok is (edit is None)  # type: ignore[attr-defined]
