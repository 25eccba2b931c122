"""Witnessed checkpoints: made automatically, shipped where the database cannot write, and
checked by `tipline audit verify` (issue 14, "The audit history can be rewritten").

The three attacks of the issue, as the tables' owner would run them (tests.databases.raw: on
SQLite the file, on PostgreSQL the superuser): delete the tail after the auditor's last
checkpoint, drop the append-only triggers, recompute the whole chain. Each passed
`tipline audit verify` before the witness; each is reported now.
"""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from keys import VerifyKey, chain_hash, generate_signing_key
from tests.audit_helpers import add_events, audit_cli
from tests.databases import raw
from tipline.audit.chain import canonical
from tipline.audit.checkpoint import Checkpoint
from tipline.audit.witness import Witness, make_checkpoint
from tipline.jobs.worker import checkpoint_once
from tipline.models.audit_head import GENESIS_HASH
from tipline.runtime import Runtime

COLUMNS = (
    "public_id, at, actor_id, actor_name, actor_role, unit_code, action, object_id, outcome, "
    "client_address, detail_json"
)


@pytest.fixture
def cli(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> Callable[..., tuple[int, str]]:
    """`tipline audit …` in this test's environment: (exit code, output)."""
    return audit_cli(env, monkeypatch, runtime)


def witness_lines(runtime: Runtime) -> list[dict[str, object]]:
    path = runtime.config.audit_witness
    assert path is not None
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_checkpoints_are_made_every_n_events_or_m_minutes(runtime: Runtime) -> None:
    rt = replace(runtime, config=runtime.config.with_overrides(checkpoint_events=5))
    assert rt.config.audit_witness == rt.config.data_dir / "audit-witness.jsonl"
    add_events(rt, 3)
    first = checkpoint_once(rt)
    assert first is not None and first.seq == 3  # the first one at once
    add_events(rt, 4)
    assert checkpoint_once(rt) is None  # 4 events < 5, and not 10 minutes yet
    add_events(rt, 1)
    second = checkpoint_once(rt)
    assert second is not None and second.seq == 8
    assert checkpoint_once(rt) is None  # nothing new
    add_events(rt, 1)
    soon = replace(rt, config=rt.config.with_overrides(checkpoint_minutes=0))
    third = checkpoint_once(soon)  # M minutes passed: one event is enough
    assert third is not None and third.seq == 9
    assert [line["seq"] for line in witness_lines(rt)] == [3, 8, 9]
    path = rt.config.audit_witness
    assert path is not None and stat.S_IMODE(path.stat().st_mode) & 0o022 == 0
    # The relay loop calls it: a worker in burst mode has no loop, so the call is direct here.


def test_a_workers_look_verifies_each_witness_record_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker looks every 15 s whether a checkpoint is due. Each look read the whole
    witness and verified every record's signature: with a checkpoint every 10 minutes, a year's
    52,000 records made each look seconds of CPU (issue 15: an idle worker's CPU grew with the
    witness). A look now reads what was appended since the last one; making a checkpoint (rare)
    still reads and verifies the whole file."""
    rt = replace(runtime, config=runtime.config.with_overrides(checkpoint_events=1))
    for _ in range(3):
        add_events(rt, 1)
        assert checkpoint_once(rt) is not None
    checked: list[int] = []
    original = Checkpoint.check

    def counting(self: Checkpoint, trusted_key: VerifyKey | None = None) -> None:
        checked.append(self.seq)
        original(self, trusted_key)

    monkeypatch.setattr(Checkpoint, "check", counting)
    assert checkpoint_once(rt) is None  # nothing new since the last checkpoint
    assert checked == [3]  # what the last checkpoint appended, not [1, 2, 3] as before
    checked.clear()
    assert checkpoint_once(rt) is None
    assert checked == []
    # Another worker (another runtime, another process) makes the next one.
    other = replace(runtime, config=rt.config)
    add_events(other, 1)
    made = checkpoint_once(other)
    assert made is not None
    checked.clear()
    assert checkpoint_once(rt) is None  # this worker sees it: not due again
    assert checked == [made.seq]


def test_the_witness_appends_even_over_a_moved_offset(tmp_path: Path) -> None:
    """O_APPEND: a record lands at the end whatever else holds the file open."""
    key = generate_signing_key()
    witness = Witness(tmp_path / "w.jsonl")
    from tipline.audit.witness import _sign

    witness.append(_sign(key, 1, "a" * 64))
    with open(tmp_path / "w.jsonl", "r+b") as other:
        other.seek(0)
        witness.append(_sign(key, 2, "b" * 64))
    assert [c.seq for c in witness.records(key.verify_key)] == [1, 2]


def test_reading_what_was_appended_agrees_with_reading_the_whole_file(tmp_path: Path) -> None:
    """A line being written is read but not remembered; a witness replaced by a shorter file,
    or a record not signed by this installation, is what reading the whole file would say."""
    from tipline.audit.witness import WitnessError, _sign

    key = generate_signing_key()
    path = tmp_path / "w.jsonl"
    witness = Witness(path)
    assert witness.records_appended(key.verify_key) == []
    witness.append(_sign(key, 1, "a" * 64))
    witness.append(_sign(key, 2, "b" * 64))
    assert [c.seq for c in witness.records_appended(key.verify_key)] == [1, 2]
    half = _sign(key, 3, "c" * 64).to_json(indent=None)
    with open(path, "a") as handle:
        handle.write(half)  # no newline yet
    assert [c.seq for c in witness.records_appended(key.verify_key)] == [1, 2, 3]
    with open(path, "a") as handle:
        handle.write("\n")
    witness.append(_sign(key, 4, "d" * 64))
    assert [c.seq for c in witness.records_appended(key.verify_key)] == [1, 2, 3, 4]
    assert witness.records_appended(key.verify_key) == witness.records(key.verify_key)
    shorter = tmp_path / "shorter.jsonl"
    shorter.write_text(_sign(key, 9, "e" * 64).to_json(indent=None) + "\n")
    shorter.replace(path)
    assert [c.seq for c in witness.records_appended(key.verify_key)] == [9]
    stranger = generate_signing_key()
    with open(path, "a") as handle:
        handle.write(_sign(stranger, 10, "f" * 64).to_json(indent=None) + "\n")
    for _ in range(2):  # refused, and again: the bad line is not skipped the second time
        with pytest.raises(WitnessError, match="witness line 2"):
            witness.records_appended(key.verify_key)


def test_checkpoints_also_go_to_syslog(runtime: Runtime) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        port = listener.getsockname()[1]
        witness = Witness(None, f"udp://127.0.0.1:{port}")
        add_events(runtime, 2)
        with runtime.sessions() as session:
            made = make_checkpoint(session, witness, runtime.config.secrets.audit_signing_key)
        message = listener.recv(4096).decode()
    assert "tipline-audit:" in message and made.hash in message and f'"seq": {made.seq}' in message


def test_deleting_the_tail_after_the_last_checkpoint_is_found(
    runtime: Runtime, cli: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    add_events(runtime, 5)
    code, out = cli("checkpoint", "--out", str(tmp_path / "auditor.json"))
    assert code == 0, out  # the auditor's last checkpoint, at #5
    add_events(runtime, 6)
    assert checkpoint_once(replace_minutes(runtime)) is not None  # the workers witnessed #12
    head = 5
    with raw(runtime.config.database_url) as db:
        head_hash = db.scalar("SELECT hash FROM audit_events WHERE seq = ?", (head,))
        db.execute("DELETE FROM audit_events WHERE seq > ?", (head,))
        db.execute("UPDATE audit_head SET seq = ?, hash = ?", (head, head_hash))
    if runtime.config.database_url.startswith("sqlite"):
        restore_sqlite_triggers(runtime)  # a careful attacker puts them back
    code, out = cli("verify", "--from-checkpoint", str(tmp_path / "auditor.json"))
    assert code == 1, out
    assert "BROKEN" in out and "ends before the checkpoint's event #12" in out
    assert "mark-restore" in out  # the hint for an operator who restored a backup


def test_dropped_triggers_are_found(runtime: Runtime, cli: Callable[..., tuple[int, str]]) -> None:
    add_events(runtime, 3)
    assert cli("verify")[0] == 0
    with raw(runtime.config.database_url, bypass_triggers=False) as db:
        if runtime.config.database_url.startswith("sqlite"):
            db.execute("DROP TRIGGER audit_events_no_delete")
        else:
            db.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    code, out = cli("verify")
    assert code == 1 and "triggers are missing" in out, out
    assert "audit_events_no_delete" in out or "audit_events_append_only" in out


def test_a_recomputed_chain_is_found(runtime: Runtime, cli: Callable[..., tuple[int, str]]) -> None:
    add_events(runtime, 6)
    assert checkpoint_once(runtime) is not None
    url = runtime.config.database_url
    with raw(url) as db:
        db.execute("UPDATE audit_events SET object_id = 'another-tip' WHERE seq = 2")
        previous = GENESIS_HASH
        rows = db.execute(f"SELECT seq, {COLUMNS} FROM audit_events ORDER BY seq")  # noqa: S608
        for row in rows:
            previous = chain_hash(previous, canonical(int(row[0]), list(row[1:])))
            db.execute("UPDATE audit_events SET hash = ? WHERE seq = ?", (previous, row[0]))
        db.execute("UPDATE audit_head SET hash = ?", (previous,))
    if url.startswith("sqlite"):
        restore_sqlite_triggers(runtime)
    code, out = cli("verify")
    assert code == 1, out
    assert "differs from the signed checkpoint" in out
    # No automatic checkpoint launders the rewritten chain.
    add_events(runtime, 1)
    assert checkpoint_once(replace_minutes(runtime)) is None
    assert [line["seq"] for line in witness_lines(runtime)] == [6]


def test_a_witness_record_not_signed_by_this_installation_is_refused(
    runtime: Runtime, cli: Callable[..., tuple[int, str]]
) -> None:
    add_events(runtime, 2)
    assert checkpoint_once(runtime) is not None
    path = runtime.config.audit_witness
    assert path is not None
    line = json.loads(path.read_text())
    line["seq"] = 1
    with open(path, "a") as handle:
        handle.write(json.dumps(line) + "\n")
    code, out = cli("verify")
    assert code == 1 and "witness line 2" in out and "signature" in out, out
    assert checkpoint_once(replace_minutes(runtime)) is None  # logged; the relay loop goes on


def test_verify_reports_the_latest_witnessed_checkpoint(
    runtime: Runtime, cli: Callable[..., tuple[int, str]]
) -> None:
    code, out = cli("verify")
    assert code == 0 and "no witnessed checkpoint yet" in out, out
    add_events(runtime, 2)
    assert checkpoint_once(runtime) is not None
    code, out = cli("verify", "--json")
    found = json.loads(out)
    assert code == 0 and found["ok"] and found["witnessed_seq"] == 3  # 2 + the first verify
    assert found["missing_triggers"] == [] and found["witness_problem"] is None


def replace_minutes(runtime: Runtime) -> Runtime:
    return replace(runtime, config=runtime.config.with_overrides(checkpoint_minutes=0))


def restore_sqlite_triggers(runtime: Runtime) -> None:
    """tests.databases.raw drops SQLite's triggers; the attacker recreates them afterwards."""
    import importlib.util
    import sqlite3

    import tipline

    source = Path(tipline.__file__).parent / "migrations" / "versions" / "0003_audit.py"
    spec = importlib.util.spec_from_file_location("migration_0003", source)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    db = sqlite3.connect(runtime.config.database_url.removeprefix("sqlite:///"))
    try:
        with db:
            for statement in migration.SQLITE_UP:
                db.execute(statement)
    finally:
        db.close()
