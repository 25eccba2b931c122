"""The keys recipes and the key chain: bindings, wraps, grants and unit key rotation."""

from __future__ import annotations

import json
import struct

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import select

from keys import (
    FAST_TEST_COST,
    BadToken,
    EnvelopeError,
    PrivateKey,
    PublicKey,
    WrongSecret,
    generate_keypair,
    grant,
    hash_password,
    new_pkce_verifier,
    open_grant,
    open_sealed,
    open_token,
    pkce_challenge,
    seal,
    sign_token,
    unwrap_with_secret,
    verify_password,
    wrap_with_secret,
)
from keys.envelope import envelope_key_version, padded_size
from keys.password import normalise_recovery_code
from tests.conftest import OFFICER_PASSWORD
from tipline.keychain import (
    NoKeyChain,
    enrol_officer,
    open_tip_key,
    unit_keys_of,
    unlock_officer_key,
)
from tipline.models import Officer, Tip, Unit
from tipline.runtime import Runtime


def test_envelope_binds_purpose_row_and_key() -> None:
    key = generate_keypair()
    sealed = seal(key.public_key, b"tin bao", purpose="message", binding="message:a", key_version=3)
    assert envelope_key_version(sealed) == 3
    assert open_sealed(key, sealed, purpose="message", binding="message:a") == b"tin bao"
    for purpose, binding, other in [
        ("message", "message:b", key),
        ("note", "message:a", key),
        ("message", "message:a", generate_keypair()),
    ]:
        with pytest.raises(EnvelopeError):
            open_sealed(other, sealed, purpose=purpose, binding=binding)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(EnvelopeError):
        open_sealed(key, bytes(tampered), purpose="message", binding="message:a")
    # An unknown format version, and a version byte changed on a good envelope (the header
    # is bound into the HPKE context), are refused.
    for version in (b"\x01", b"\x03", b"\xff"):
        assert sealed[2:3] != version
        with pytest.raises(EnvelopeError):
            open_sealed(key, b"TE" + version + sealed[3:], purpose="message", binding="message:a")


# The sealed length says which bucket the plaintext fell in, nothing finer: envelope =
# 8-byte header + 32-byte HPKE encapsulated key + padded plaintext + 16-byte tag, where the
# padded plaintext is a 4-byte length and zeros up to a multiple of 256 bytes (up to 4 KiB),
# then up to the next Padmé size (at most 12 % more: 5 kB still in steps of 256 bytes).
ENVELOPE_OVERHEAD = 8 + 32 + 16
BUCKETS = [256 * k for k in range(1, 21)]


def test_sealed_lengths_are_size_buckets_not_plaintext_lengths() -> None:
    key = generate_keypair()
    lengths = {}
    for size in range(1, 5001):
        plaintext = bytes([size % 251]) * size
        sealed = seal(key.public_key, plaintext, purpose="message", binding=f"message:{size}")
        lengths[size] = len(sealed) - ENVELOPE_OVERHEAD
        if size % 97 == 0 or size in (1, 252, 253, 4092, 4093, 5000):
            opened = open_sealed(key, sealed, purpose="message", binding=f"message:{size}")
            assert opened == plaintext
    assert sorted(set(lengths.values())) == BUCKETS
    assert lengths[1] == lengths[252] == 256 and lengths[253] == 512  # 4-byte length prefix
    assert lengths[4092] == 4096 and lengths[4093] == 4352 and lengths[5000] == 5120
    assert len(seal(key.public_key, b"", purpose="message", binding="m")) == 256 + 56
    big = seal(key.public_key, b"x" * 70_000, purpose="message", binding="m")
    assert len(big) - ENVELOPE_OVERHEAD == 71_680  # Padmé: 70,004 framed bytes, 11 low bits
    for size in (100_000, 1_000_000, 33_000_000):  # files: never more than 12 % larger
        assert size + 4 <= padded_size(size + 4) <= (size + 4) * 1.12


# Made by the format-1 code (plaintext sealed as is) before padding came: its key and bytes.
V1_KEY = "01b0b6935f5a1e4d6ef680a6b0899eb05629db8aebddd3403f4d6b266cb9de5942"
V1_ENVELOPE = (
    "5445010100000007b74ced1c01ca7123cdce12de300f63f892317bd1195684a662adbaf144ebc45dc7fb95bf"
    "bfba6ee05beebd224bf8bada9f6ac6000fd138457fce03e3"
)


def test_a_format_1_envelope_still_opens() -> None:
    key = PrivateKey.from_bytes(bytes.fromhex(V1_KEY))
    sealed = bytes.fromhex(V1_ENVELOPE)
    assert sealed[2] == 1 and envelope_key_version(sealed) == 7
    opened = open_sealed(key, sealed, purpose="message", binding="message:v1")
    assert opened == "tin báo cũ".encode()
    with pytest.raises(EnvelopeError):
        open_sealed(key, sealed, purpose="message", binding="message:v2")
    # The same key writes format 2 now.
    assert seal(key.public_key, b"moi", purpose="message", binding="m")[2] == 2


def _seal_raw(public: PublicKey, version: int, inner: bytes) -> bytes:
    """An envelope of ``version`` around ``inner`` exactly as given: what a forger can make."""
    header = struct.pack(">2sBBI", b"TE", version, public.suite_id, 0)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = b"tipline/envelope\x00" + header + b"message\x00message:a"
    return header + suite.encrypt(inner, X25519PublicKey.from_public_bytes(public.raw), info)


def test_a_format_2_envelope_whose_framing_lies_is_refused() -> None:
    key = generate_keypair()
    where = {"purpose": "message", "binding": "message:a"}
    good = struct.pack(">I", 3) + b"abc" + bytes(256 - 7)
    assert open_sealed(key, _seal_raw(key.public_key, 2, good), **where) == b"abc"
    for inner in [
        b"",  # no length prefix
        b"\x00\x00\x01",  # a truncated length prefix
        struct.pack(">I", 300) + b"abc" + bytes(249),  # a length beyond what is there
        struct.pack(">I", 4) + b"abc",  # the padding cut short of the stated length
        struct.pack(">I", 3) + b"abc" + b"\x00" * 10 + b"\x01" + bytes(10),  # non-zero padding
    ]:
        with pytest.raises(EnvelopeError):
            open_sealed(key, _seal_raw(key.public_key, 2, inner), **where)


def test_grants_of_fixed_size_keys_are_not_padded() -> None:
    subject, holder = generate_keypair(), generate_keypair()
    sealed = grant(subject, holder.public_key, binding="grant:tip:1>unit_key:2")
    # Format 2, a 4-byte length and the 33-byte key: every grant has the same length.
    assert sealed[2] == 2 and len(sealed) == ENVELOPE_OVERHEAD + 4 + 33


def test_grant_opens_only_for_its_holder_and_binding() -> None:
    subject, holder = generate_keypair(), generate_keypair()
    sealed = grant(subject, holder.public_key, binding="grant:tip:1>unit_key:2")
    opened = open_grant(sealed, holder, binding="grant:tip:1>unit_key:2")
    assert opened.public_key == subject.public_key
    with pytest.raises(EnvelopeError):
        open_grant(sealed, holder, binding="grant:tip:2>unit_key:2")
    assert "PrivateKey" in repr(opened) and str(opened.to_bytes()) not in repr(opened)


def test_password_wrap_and_hash() -> None:
    key = generate_keypair()
    wrapped = wrap_with_secret(
        key, "mật khẩu dài", cost=FAST_TEST_COST, binding="officer:x:password"
    )
    assert (
        unwrap_with_secret(wrapped, "mật khẩu dài", binding="officer:x:password").public_key
        == key.public_key
    )
    with pytest.raises(WrongSecret):
        unwrap_with_secret(wrapped, "sai", binding="officer:x:password")
    with pytest.raises(WrongSecret):
        unwrap_with_secret(wrapped, "mật khẩu dài", binding="officer:y:password")
    stored = hash_password("mật khẩu dài", cost=FAST_TEST_COST)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "mật khẩu dài") and not verify_password(stored, "sai")


def test_recovery_code_unlocks_the_officer_key(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        enrolment = enrol_officer(
            session,
            username="a",
            display_name="A",
            role="officer",
            unit=None,
            password=OFFICER_PASSWORD,
            cost=FAST_TEST_COST,
        )
        officer = enrolment.officer
        code = enrolment.recovery_code
        assert len(code) == 29 and code.count("-") == 4
        typed = code.lower().replace("-", " ")
        via_code = unwrap_with_secret(
            officer.key_wrapped_by_recovery,
            normalise_recovery_code(typed),
            binding=officer.key_binding + ":recovery",
        )
        assert via_code.public_key == unlock_officer_key(officer, OFFICER_PASSWORD).public_key
        with pytest.raises(WrongSecret):
            unlock_officer_key(officer, code)


@pytest.mark.usefixtures("units")
def test_auditors_and_admins_hold_no_unit_key(runtime: Runtime) -> None:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        auditor = add_officer(
            session,
            username="thanhtra2",
            display_name="T",
            role="auditor",
            unit_code="v2025:96",
            password=OFFICER_PASSWORD,
            cost=FAST_TEST_COST,
        ).officer
        key = unlock_officer_key(auditor, OFFICER_PASSWORD)
        assert unit_keys_of(session, auditor, key) == {}


@pytest.mark.usefixtures("units")
def test_rotation_keeps_old_tips_readable_and_reseal_moves_them(runtime: Runtime) -> None:
    from tipline.intake.expansion import accept_message
    from tipline.jobs.dispatch import dispatch_tip
    from tipline.units import rotate_key
    from tipline.zalo.events import InboundMessage, Sender

    msg = InboundMessage(
        "user_send_text", "text", "3886132808788132134", Sender(user_id="42"), "m1", "cũ"
    )
    public_id = accept_message(runtime, msg).tip_public_id
    dispatch_tip(public_id)

    def canbo_opens() -> None:
        with runtime.sessions() as session:
            officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
            keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
            open_tip_key(session, session.scalars(select(Tip)).one(), keys)

    with runtime.sessions() as session, session.begin():
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        assert unit.current_key is not None
        before = unit.current_key.version
        new_key, moved = rotate_key(session, "v2025:32134")
        assert new_key.version == before + 1 and moved == 0
    canbo_opens()  # still readable through the retired version
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        opener = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
    with runtime.sessions() as session, session.begin():
        newest, moved = rotate_key(session, "v2025:32134", opener)
        assert newest.version == before + 2 and moved == 1
    with runtime.sessions() as session:
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        assert unit.current_key is not None and unit.current_key.version == before + 2
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        tip = session.scalars(select(Tip).where(Tip.public_id == public_id)).one()
        only_newest = {unit.current_key.id: keys[unit.current_key.id]}
        body = tip.messages[0]
        tip_key = open_tip_key(session, tip, only_newest)
        assert (
            json.loads(
                open_sealed(tip_key, body.sealed_body, purpose="message", binding=body.binding)
            )["text"]
            == "cũ"
        )
        commander = session.scalars(select(Officer).where(Officer.username == "chihuy")).one()
        chain = unit_keys_of(session, commander, unlock_officer_key(commander, OFFICER_PASSWORD))
        assert open_tip_key(session, tip, chain).public_key == tip_key.public_key
        other = session.scalars(select(Officer).where(Officer.username == "canbo2")).one()
        with pytest.raises(NoKeyChain):
            open_tip_key(
                session,
                tip,
                unit_keys_of(session, other, unlock_officer_key(other, OFFICER_PASSWORD)),
            )


def test_signed_tokens_open_only_for_their_purpose_binding_and_lifetime() -> None:
    key, other_key = b"k" * 32, b"o" * 32
    token = sign_token(key, "csrf", "abc_-9", bound_to="cookie-1", issued=1_000_000)
    opened = open_token(key, "csrf", token, max_age=60, bound_to="cookie-1", now=1_000_060)
    assert opened == "abc_-9"
    assert "cookie-1" not in token  # the binding is checked, never carried
    refused = [
        (key, "pow", token, "cookie-1", 1_000_000),  # another purpose
        (key, "csrf", token, "cookie-2", 1_000_000),  # another browser
        (other_key, "csrf", token, "cookie-1", 1_000_000),  # another installation
        (key, "csrf", token, "cookie-1", 1_000_061),  # too old
        (key, "csrf", token, "cookie-1", 1_000_000 - 61),  # from the future
        (key, "csrf", token.replace("abc", "abd"), "cookie-1", 1_000_000),  # payload changed
        (key, "csrf", token.replace(".f4240.", ".f4241."), "cookie-1", 1_000_000),  # time
        (key, "csrf", token[:-1], "cookie-1", 1_000_000),  # signature cut
        (key, "csrf", "", "cookie-1", 1_000_000),
        (key, "csrf", "a.b", "cookie-1", 1_000_000),
        (key, "csrf", "a b.f4240." + token.split(".")[2], "cookie-1", 1_000_000),
        (key, "csrf", "x" * 5000, "cookie-1", 1_000_000),
    ]
    for k, purpose, candidate, bound_to, now in refused:
        with pytest.raises(BadToken):
            open_token(k, purpose, candidate, max_age=60, bound_to=bound_to, now=now)
    with pytest.raises(ValueError):
        sign_token(key, "csrf", "not.url-safe")


def test_pkce_challenge_is_rfc_7636_s256_and_verifiers_are_fresh() -> None:
    # RFC 7636, Appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    made = {new_pkce_verifier() for _ in range(20)}
    assert len(made) == 20
    assert all(len(v) == 43 and "=" not in v for v in made)
