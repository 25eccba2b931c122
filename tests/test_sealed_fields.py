"""The sealing contract (tipline.models.sealed_fields): its strings are pinned, no two fields
can be opened as each other, and nothing seals or opens around it."""

from __future__ import annotations

import ast
import typing
from pathlib import Path
from string import Formatter
from typing import Any

import pytest
from sqlalchemy import LargeBinary

from keys import (
    FAST_TEST_COST,
    EnvelopeError,
    WrongSecret,
    generate_keypair,
    new_secret_key,
    new_session_secret,
    open_grant,
    open_sealed,
    open_with_key,
    unwrap_from_session,
    unwrap_with_secret,
)
from tipline.models import Base, sealed_fields
from tipline.models.sealed_fields import (
    SEALED_FIELDS,
    Envelope,
    Grant,
    SealedField,
    SecretBox,
    SecretWrap,
    SessionWrap,
)

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_MODULE = ROOT / "tipline" / "models" / "sealed_fields.py"

# What every stored value was sealed under: (mechanism, purpose, binding format). A change
# here is a migration that re-seals every stored value of the field (and the sessions of
# logged-in officers), never an edit to make this test pass.
PINNED = {
    "MESSAGE_BODY": ("Envelope", "message", "message:{message_public_id}"),
    "TIP_ROUTING": ("Envelope", "routing", "tip:{tip_public_id}"),
    "ATTACHMENT_SOURCE": ("Envelope", "attachment_source", "attachment:{attachment_public_id}"),
    "ATTACHMENT_FILE": ("Envelope", "attachment_file", "attachment:{attachment_public_id}"),
    "ATTACHMENT_FACTS": ("Envelope", "attachment_facts", "attachment:{attachment_public_id}"),
    "INBOUND_EVENT": ("Envelope", "inbound_event", "inbound:{dedup_key}"),
    "ATTACHMENT_FETCH": (
        "Envelope",
        "attachment_fetch",
        "attachment-fetch:{attachment_public_id}",
    ),
    "WEB_UPLOAD": ("Envelope", "web_upload", "upload:{attachment_public_id}"),
    "TIP_REROUTE": ("Envelope", "reroute", "tip:{tip_public_id}"),
    "INBOUND_EVENT_FALLBACK": ("Envelope", "inbound_event_fallback", "inbound:{dedup_key}"),
    "QUARANTINED_EVENT": ("Envelope", "quarantined_event", "quarantine:{digest}"),
    "NOTICE_FOR_RELAY": ("Envelope", "notice", "notice:{notice_public_id}"),
    "REPLY_ADDRESS": ("SecretBox", "reply_address", "reply_address:{informant_alias}"),
    "LEGACY_REPLY_ADDRESS": ("Envelope", "reply_address", "reply_address:{informant_alias}"),
    "MESSAGE_FOR_RELAY": ("Envelope", "outgoing", "message:{message_public_id}"),
    "OA_TOKENS": ("Envelope", "oa_tokens", "oa_tokens:{oa_id}"),
    "OFFICER_TOTP_SECRET": ("Envelope", "totp", "officer:{officer_public_id}"),
    "OFFICER_KEY_PASSWORD_WRAP": ("SecretWrap", None, "officer:{officer_public_id}:password"),
    "OFFICER_KEY_RECOVERY_WRAP": ("SecretWrap", None, "officer:{officer_public_id}:recovery"),
    "OFFICER_KEY_SESSION_WRAP": ("SessionWrap", None, "{officer_public_id}"),
    "KEY_GRANT": (
        "Grant",
        "grant",
        "grant:{subject_kind}:{subject_id}>{holder_kind}:{holder_id}",
    ),
    "INFORMANT_KEY_WRAP": ("SecretWrap", None, "informant_key:{receipt_code}"),
    "DECOY_WRAP": ("SecretWrap", None, "decoy"),
}

# Sealed values kept outside the database; every other field names its column.
OUTSIDE_THE_DATABASE = {"ATTACHMENT_FILE", "WEB_UPLOAD", "OFFICER_KEY_SESSION_WRAP", "DECOY_WRAP"}


def test_every_field_is_pinned_to_its_purpose_and_binding_format() -> None:
    assert {
        field.name: (type(field).__name__, field.purpose, field.binding_format)
        for field in SEALED_FIELDS
    } == PINNED


def test_every_field_is_in_the_table_once_under_its_own_name() -> None:
    declared = [
        value
        for value in vars(sealed_fields).values()
        if isinstance(value, Envelope | Grant | SecretBox | SecretWrap | SessionWrap)
    ]
    assert len(declared) == len(SEALED_FIELDS) == len({f.name for f in SEALED_FIELDS})
    assert all(getattr(sealed_fields, field.name) is field for field in SEALED_FIELDS)
    assert set(map(id, declared)) == set(map(id, SEALED_FIELDS))


def test_each_field_names_its_column_and_every_sealed_column_has_a_field() -> None:
    named = {field.stored_in for field in SEALED_FIELDS if field.name not in OUTSIDE_THE_DATABASE}
    binary = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        # Public keys and their certificates (keys.certify) are public: not sealed fields.
        if isinstance(column.type, LargeBinary)
        and column.name not in ("public_key", "key_certificate")
    }
    assert named == binary
    outside = {field.stored_in for field in SEALED_FIELDS if field.name in OUTSIDE_THE_DATABASE}
    assert not outside & binary


def _identifiers(field: SealedField, salt: str = "") -> dict[str, Any]:
    """Sample identifiers for the field's binding, distinct per name (``salt`` varies them)."""
    hints = typing.get_type_hints(field.binding)
    return {
        name: (len(name) + len(salt) if kind is int else f"{name}-value{salt}")
        for name, kind in hints.items()
        if name != "return"
    }


@pytest.mark.parametrize("field", SEALED_FIELDS, ids=lambda field: field.name)
def test_the_pinned_strings_are_what_the_keys_recipes_receive(field: SealedField) -> None:
    """Sealed through the field, the value opens with the keys recipe given the pinned
    literal strings, through the field with the same row, and with no other row."""
    _, purpose, binding_format = PINNED[field.name]
    ids = _identifiers(field)
    other = _identifiers(field, salt="-other")
    binding = binding_format.format(**ids)
    key = generate_keypair()
    match field:
        case Envelope():
            assert purpose is not None
            sealed = field.seal(key.public_key, b"noi dung", **ids)
            assert open_sealed(key, sealed, purpose=purpose, binding=binding) == b"noi dung"
            assert field.open(key, sealed, **ids) == b"noi dung"
            with pytest.raises(EnvelopeError):
                field.open(key, sealed, **other)
        case Grant():
            subject = generate_keypair()
            sealed = field.seal(subject, key.public_key, **ids)
            assert open_grant(sealed, key, binding=binding).to_bytes() == subject.to_bytes()
            assert open_sealed(key, sealed, purpose="grant", binding=binding) == subject.to_bytes()
            assert field.open(sealed, key, **ids).to_bytes() == subject.to_bytes()
            with pytest.raises(EnvelopeError):
                field.open(sealed, key, **other)
        case SecretBox():
            secret_key = new_secret_key()
            sealed = field.seal(secret_key, b"noi dung", **ids)
            opened = open_with_key(secret_key, sealed, purpose=purpose or "", binding=binding)
            assert opened == b"noi dung"
            assert field.open(secret_key, sealed, **ids) == b"noi dung"
            with pytest.raises(EnvelopeError):
                field.open(secret_key, sealed, **other)
            with pytest.raises(EnvelopeError):
                field.open(new_secret_key(), sealed, **ids)
        case SecretWrap():
            wrapped = field.wrap(key, "bi mat", FAST_TEST_COST, **ids)
            opened = unwrap_with_secret(wrapped, "bi mat", binding=binding)
            assert opened.to_bytes() == key.to_bytes()
            assert field.unwrap(wrapped, "bi mat", **ids).to_bytes() == key.to_bytes()
            with pytest.raises(WrongSecret):  # the decoy binds no row: only the secret differs
                field.unwrap(wrapped, "bi mat" if ids else "mat khau khac", **other)
        case SessionWrap():
            secret = new_session_secret()
            wrapped = field.wrap(key, secret, **ids)
            opened = unwrap_from_session(wrapped, secret, binding=binding)
            assert opened.to_bytes() == key.to_bytes()
            assert field.unwrap(wrapped, secret, **ids).to_bytes() == key.to_bytes()
            with pytest.raises(WrongSecret):
                field.unwrap(wrapped, secret, **other)


# --- no field opens as another -----------------------------------------------------------


def _shape(binding_format: str) -> tuple[bool, str, str]:
    """(no identifiers at all, literal text before the first identifier, after the last)."""
    parts = list(Formatter().parse(binding_format))
    fixed = all(name is None for _, name, _, _ in parts)
    lead = parts[0][0] if parts else ""
    trail = parts[-1][0] if parts and parts[-1][1] is None else ""
    return fixed, lead, trail


def could_be_equal(a: str, b: str) -> bool:
    """Whether bindings of formats ``a`` and ``b`` can be the same string, for some
    identifiers; False only when their literal text proves they cannot."""
    fixed_a, lead_a, trail_a = _shape(a)
    fixed_b, lead_b, trail_b = _shape(b)
    if fixed_a and fixed_b:
        return a == b
    if fixed_a or fixed_b:
        constant, lead, trail = (a, lead_b, trail_b) if fixed_a else (b, lead_a, trail_a)
        return (
            constant.startswith(lead)
            and constant.endswith(trail)
            and len(constant) >= len(lead) + len(trail)
        )
    leads_agree = lead_a.startswith(lead_b) or lead_b.startswith(lead_a)
    trails_agree = trail_a.endswith(trail_b) or trail_b.endswith(trail_a)
    return leads_agree and trails_agree


def test_the_collision_check_can_tell() -> None:
    assert could_be_equal("tip:{a}", "tip:{b}")
    assert could_be_equal("tip:{a}", "tip:{b}:x")
    assert could_be_equal("decoy", "{officer_public_id}")
    assert could_be_equal("decoy", "decoy")
    assert not could_be_equal("officer:{a}:password", "officer:{a}:recovery")
    assert not could_be_equal("message:{a}", "attachment:{a}")
    assert not could_be_equal("decoy", "officer:{a}:password")
    assert could_be_equal("decoy", "dec{a}oy")  # with an empty identifier
    assert not could_be_equal("decoy", "dec{a}oy!")


def _primitive(field: SealedField) -> str:
    """Fields sealed by the same primitive could be confused; grants are HPKE envelopes."""
    match field:
        case Envelope() | Grant():
            return "hpke"
        case SecretWrap():
            return "argon2id wrap"
        case SessionWrap():
            return "session wrap"
        case SecretBox():
            return "secret box"


def test_no_two_fields_share_a_purpose_and_a_possible_binding() -> None:
    clashes = [
        (a.name, b.name)
        for i, a in enumerate(SEALED_FIELDS)
        for b in SEALED_FIELDS[i + 1 :]
        if _primitive(a) == _primitive(b)
        and a.purpose == b.purpose
        and could_be_equal(a.binding_format, b.binding_format)
    ]
    assert clashes == []


# --- nothing seals or opens around the contract ------------------------------------------

RECIPES = {
    "seal",
    "open_sealed",
    "grant",
    "open_grant",
    "wrap_with_secret",
    "unwrap_with_secret",
    "wrap_for_session",
    "unwrap_from_session",
    "seal_with_key",
    "open_with_key",
}
RECIPE_MODULES = {"envelope", "grants", "password", "session", "secret_box"}
BINDING_LEADS = sorted(
    {lead for field in SEALED_FIELDS if (lead := _shape(field.binding_format)[1]) and ":" in lead}
)


def _is_ad_hoc_string(node: ast.expr) -> bool:
    """A literal, an f-string, a concatenation or a ``.format`` call: a string made in place."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def offences(source: str, filename: str) -> list[str]:
    """Where ``source`` seals or opens without the contract, or spells a binding itself."""
    tree = ast.parse(source, filename=filename)
    found: list[str] = []
    keys_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            keys_aliases |= {
                alias.asname or "keys" for alias in node.names if alias.name.split(".")[0] == "keys"
            }
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "keys":
            for alias in node.names:
                if alias.name in RECIPES:
                    found.append(f"{filename}:{node.lineno}: imports keys recipe {alias.name}")
                elif alias.name in RECIPE_MODULES:
                    keys_aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in RECIPES
            and isinstance(node.value, ast.Name | ast.Attribute)
            and ast.unparse(node.value).split(".")[0] in keys_aliases
        ):
            found.append(f"{filename}:{node.lineno}: calls keys recipe {node.attr}")
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in ("purpose", "binding") and _is_ad_hoc_string(keyword.value):
                    found.append(f"{filename}:{node.lineno}: ad-hoc {keyword.arg}=")
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith(tuple(BINDING_LEADS))
            ):
                found.append(f"{filename}:{node.lineno}: spells a binding: {first.value!r}")
    return found


def test_the_call_site_scan_can_fire() -> None:
    before = """
from keys import open_sealed, seal
from keys import grants as g
import keys.session

open_sealed(k, e, purpose="totp", binding=officer.key_binding + ":password")
seal(p, b, purpose=X, binding=f"attachment:{public_id}")
g.open_grant(s, h, binding=row.binding)
keys.session.unwrap_from_session(w, s, binding="decoy")
wrap(k, s, binding="officer:{}".format(officer.public_id))
binding = f"tip:{row.public_id}"
"""
    reasons = sorted(line.split(": ", 1)[1] for line in offences(before, "before.py"))
    assert reasons == sorted(
        [
            "imports keys recipe open_sealed",
            "imports keys recipe seal",
            "ad-hoc purpose=",
            "ad-hoc binding=",
            "ad-hoc binding=",
            "spells a binding: 'attachment:'",
            "calls keys recipe open_grant",
            "calls keys recipe unwrap_from_session",
            "ad-hoc binding=",
            "ad-hoc binding=",
            "spells a binding: 'tip:'",
        ]
    )


def test_every_seal_open_grant_and_wrap_goes_through_the_contract() -> None:
    paths = [
        path
        for folder in ("tipline", "triage", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != CONTRACT_MODULE
    ]
    assert len(paths) > 50  # the scan reads the product, not an empty folder
    found = [
        offence
        for path in paths
        for offence in offences(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []
    # ...and the contract module is where they are: the scan would see it.
    assert offences(CONTRACT_MODULE.read_text(), "sealed_fields.py")
