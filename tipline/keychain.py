"""The key chain in the database: unit keys, officer keys, tip keys and the grants linking them.

This module decides which key is sealed to which (DESIGN.md, "Keys"); how each is sealed, and
under what binding, is the contract of ``tipline.models.sealed_fields``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from keys import (
    EnvelopeError,
    KdfCost,
    PrivateKey,
    PublicKey,
    generate_keypair,
    hash_password,
    new_recovery_code,
)
from tipline.models import (
    KEY_HOLDING_ROLES,
    Holder,
    KeyGrant,
    Officer,
    Subject,
    Tip,
    TransitEpoch,
    Unit,
    UnitKey,
    utcnow,
)
from tipline.models.key_trust import (
    certify,
    officer_subject,
    tip_subject,
    transit_subject,
    unit_key_subject,
)
from tipline.models.sealed_fields import (
    KEY_GRANT,
    OFFICER_KEY_PASSWORD_WRAP,
    OFFICER_KEY_RECOVERY_WRAP,
    OFFICER_TOTP_SECRET,
)


class NoKeyChain(Exception):
    """No chain of grants leads from the given keys to the requested key."""


def _add_grant(
    session: Session,
    subject: PrivateKey,
    subject_kind: Subject,
    subject_id: int,
    holder_kind: Holder,
    holder_id: int,
    holder_public: PublicKey,
) -> KeyGrant:
    """Seal ``subject`` to ``holder_public``: a stored key, checked against its certificate
    by the sealing contract (tipline.models.key_trust) before anything is sealed to it."""
    row = KeyGrant(
        subject_kind=subject_kind,
        subject_id=subject_id,
        holder_kind=holder_kind,
        holder_id=holder_id,
        sealed=KEY_GRANT.seal(
            subject,
            holder_public,
            subject_kind,
            subject_id,
            holder_kind,
            holder_id,
        ),
    )
    session.add(row)
    return row


def _grant_row(
    session: Session, subject_kind: Subject, subject_id: int, holder_kind: Holder, holder_id: int
) -> KeyGrant | None:
    return session.scalars(
        _GRANT_ROW,
        {
            "subject_kind": subject_kind,
            "subject_id": subject_id,
            "holder_kind": holder_kind,
            "holder_id": holder_id,
        },
    ).one_or_none()


_GRANT_ROW = select(KeyGrant).where(
    KeyGrant.subject_kind == bindparam("subject_kind"),
    KeyGrant.subject_id == bindparam("subject_id"),
    KeyGrant.holder_kind == bindparam("holder_kind"),
    KeyGrant.holder_id == bindparam("holder_id"),
)


# --- units -------------------------------------------------------------------------------


def create_unit_key(session: Session, unit: Unit) -> tuple[UnitKey, PrivateKey]:
    """A new key version for ``unit``, granted to its parent's current key and its members.

    Granting needs only public keys, so an admin can create and rotate unit keys without ever
    holding one. Earlier versions are retired for new tips but keep opening their grants.
    """
    private = generate_keypair()
    version = max((k.version for k in unit.keys), default=0) + 1
    now = utcnow()
    for old in unit.keys:
        if old.retired_at is None:
            old.retired_at = now
    unit_key = UnitKey(unit=unit, version=version, public_key=private.public_key.to_bytes())
    session.add(unit_key)
    session.flush()
    unit_key.key_certificate = certify(
        unit_key_subject(unit_key.id, unit_key.unit_id, version), private.public_key
    )
    parent_key = unit.parent.current_key if unit.parent else None
    if parent_key is not None:
        _add_grant(
            session,
            private,
            Subject.UNIT_KEY,
            unit_key.id,
            Holder.UNIT_KEY,
            parent_key.id,
            parent_key.public,
        )
    for officer in members_holding_keys(session, unit):
        _add_grant(
            session,
            private,
            Subject.UNIT_KEY,
            unit_key.id,
            Holder.OFFICER,
            officer.id,
            officer.public,
        )
    return unit_key, private


def members_holding_keys(session: Session, unit: Unit) -> list[Officer]:
    """Active officers and commanders of ``unit`` who hold a grant of any of its key versions."""
    key_ids = [k.id for k in unit.keys]
    if not key_ids:
        return []
    holder_ids = select(KeyGrant.holder_id).where(
        KeyGrant.subject_kind == Subject.UNIT_KEY,
        KeyGrant.subject_id.in_(key_ids),
        KeyGrant.holder_kind == Holder.OFFICER,
    )
    return list(
        session.scalars(select(Officer).where(Officer.id.in_(holder_ids), Officer.active.is_(True)))
    )


def grant_unit_key_to_officer(
    session: Session, unit_key: UnitKey, private: PrivateKey, officer: Officer
) -> None:
    if officer.role not in KEY_HOLDING_ROLES:
        raise ValueError("auditors and admins never hold unit keys")
    if _grant_row(session, Subject.UNIT_KEY, unit_key.id, Holder.OFFICER, officer.id) is None:
        _add_grant(
            session,
            private,
            Subject.UNIT_KEY,
            unit_key.id,
            Holder.OFFICER,
            officer.id,
            officer.public,
        )


# --- officers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    officer: Officer
    private_key: PrivateKey
    recovery_code: str


def enrol_officer(
    session: Session,
    *,
    username: str,
    display_name: str,
    role: str,
    unit: Unit | None,
    password: str,
    cost: KdfCost,
    totp_secret: str | None = None,
) -> Enrolment:
    """Create an account with its key pair wrapped under the password and a recovery code."""
    private = generate_keypair()
    recovery = new_recovery_code()
    officer = Officer(
        username=username,
        display_name=display_name,
        role=role,
        unit=unit,
        password_hash=hash_password(password, cost=cost),
        public_key=private.public_key.to_bytes(),
        key_wrapped_by_password=b"",
        key_wrapped_by_recovery=b"",
    )
    session.add(officer)
    session.flush()  # assigns public_id
    officer.key_certificate = certify(officer_subject(officer.public_id), private.public_key)
    officer.key_wrapped_by_password = OFFICER_KEY_PASSWORD_WRAP.wrap(
        private, password, cost, officer_public_id=officer.public_id
    )
    officer.key_wrapped_by_recovery = OFFICER_KEY_RECOVERY_WRAP.wrap(
        private, recovery, cost, officer_public_id=officer.public_id
    )
    if totp_secret is not None:
        officer.sealed_totp_secret = OFFICER_TOTP_SECRET.seal(
            private.public_key, totp_secret.encode(), officer_public_id=officer.public_id
        )
    return Enrolment(officer, private, recovery)


def unlock_officer_key(officer: Officer, password: str) -> PrivateKey:
    """The officer's private key; raises ``keys.WrongSecret`` for a wrong password."""
    return OFFICER_KEY_PASSWORD_WRAP.unwrap(
        officer.key_wrapped_by_password, password, officer_public_id=officer.public_id
    )


def unit_keys_of(
    session: Session, officer: Officer, officer_key: PrivateKey
) -> dict[int, PrivateKey]:
    """Every unit key version reachable from the officer's key: their units' and those below."""
    opened: dict[int, PrivateKey] = {}
    frontier: list[tuple[Holder, int, PrivateKey]] = [(Holder.OFFICER, officer.id, officer_key)]
    while frontier:
        holder_kind, holder_id, holder_key = frontier.pop()
        rows = session.scalars(
            select(KeyGrant).where(
                KeyGrant.holder_kind == holder_kind,
                KeyGrant.holder_id == holder_id,
                KeyGrant.subject_kind == Subject.UNIT_KEY,
            )
        )
        for row in rows:
            if row.subject_id in opened:
                continue
            try:
                key = KEY_GRANT.open(row.sealed, holder_key, *row.link)
            except EnvelopeError:
                continue
            opened[row.subject_id] = key
            frontier.append((Holder.UNIT_KEY, row.subject_id, key))
    return opened


# --- tips --------------------------------------------------------------------------------


def new_tip_key() -> PrivateKey:
    return generate_keypair()


def transit_grants(session: Session, tip_ids: list[int]) -> dict[int, KeyGrant]:
    """The transit grants of these tips, by tip id (a dispatch batch reads them at once)."""
    return {row.subject_id: row for row in session.scalars(_TRANSIT_GRANTS, {"tip_ids": tip_ids})}


_TRANSIT_GRANTS = select(KeyGrant).where(
    KeyGrant.subject_kind == Subject.TIP,
    KeyGrant.subject_id.in_(bindparam("tip_ids", expanding=True)),
    KeyGrant.holder_kind == Holder.TRANSIT,
    KeyGrant.holder_id == 0,
)


def open_tip_from_transit(
    session: Session,
    tip: Tip,
    transit_key_for: Callable[[bytes], PrivateKey],
    grants: dict[int, KeyGrant] | None = None,
) -> PrivateKey:
    """The tip key through its transit grant; ``transit_key_for`` finds the private half of
    the epoch the grant names (tipline.transit: it raises when that key is gone).
    ``grants``: the batch's transit grants (:func:`transit_grants`), read already."""
    if grants is None:
        row = _grant_row(session, Subject.TIP, tip.id, Holder.TRANSIT, 0)
    else:
        row = grants.get(tip.id)
    if row is None:
        raise NoKeyChain("the tip has no transit grant (already dispatched?)")
    return KEY_GRANT.open(row.sealed, transit_key_for(row.sealed), *row.link)


def drop_other_unit_grants(session: Session, tip: Tip, keep: UnitKey) -> None:
    """At dispatch: the intake unit's fallback grant goes unless it is the routed unit's own
    (a parent still reaches the tip through its child's unit key)."""
    session.execute(
        delete(KeyGrant).where(
            KeyGrant.subject_kind == Subject.TIP,
            KeyGrant.subject_id == tip.id,
            KeyGrant.holder_kind == Holder.UNIT_KEY,
            KeyGrant.holder_id != keep.id,
        )
    )


def grant_tip_to_unit(session: Session, tip: Tip, tip_key: PrivateKey, unit: Unit) -> UnitKey:
    """Seal the tip key to the unit's current key version and drop any transit grant."""
    unit_key = unit.current_key
    if unit_key is None:
        raise NoKeyChain(f"unit {unit.code} has no key yet")
    if _grant_row(session, Subject.TIP, tip.id, Holder.UNIT_KEY, unit_key.id) is None:
        _add_grant(
            session, tip_key, Subject.TIP, tip.id, Holder.UNIT_KEY, unit_key.id, unit_key.public
        )
    drop_transit_grant(session, tip)
    return unit_key


def drop_transit_grant(session: Session, tip: Tip) -> None:
    session.execute(
        delete(KeyGrant).where(
            KeyGrant.subject_kind == Subject.TIP,
            KeyGrant.subject_id == tip.id,
            KeyGrant.holder_kind == Holder.TRANSIT,
        )
    )


def open_tip_key(session: Session, tip: Tip, unit_keys: dict[int, PrivateKey]) -> PrivateKey:
    """The tip key, if one of ``unit_keys`` holds a grant of it; else :class:`NoKeyChain`."""
    rows = session.scalars(
        select(KeyGrant).where(
            KeyGrant.subject_kind == Subject.TIP,
            KeyGrant.subject_id == tip.id,
            KeyGrant.holder_kind == Holder.UNIT_KEY,
        )
    )
    for row in rows:
        holder = unit_keys.get(row.holder_id)
        if holder is not None:
            return KEY_GRANT.open(row.sealed, holder, *row.link)
    raise NoKeyChain("no key chain leads to this tip")


def reseal_tip_grants(session: Session, old: UnitKey, old_private: PrivateKey, new: UnitKey) -> int:
    """Move every tip grant held by ``old`` to ``new`` (the second half of a rotation)."""
    rows = list(
        session.scalars(
            select(KeyGrant).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
                KeyGrant.holder_id == old.id,
            )
        )
    )
    for row in rows:
        tip_key = KEY_GRANT.open(row.sealed, old_private, *row.link)
        if _grant_row(session, Subject.TIP, row.subject_id, Holder.UNIT_KEY, new.id) is None:
            _add_grant(
                session,
                tip_key,
                Subject.TIP,
                row.subject_id,
                Holder.UNIT_KEY,
                new.id,
                new.public,
            )
        session.delete(row)
    return len(rows)


def tip_ids_held_by(session: Session, unit_key_ids: Iterable[int]) -> set[int]:
    return set(
        session.scalars(
            select(KeyGrant.subject_id).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
                KeyGrant.holder_id.in_(list(unit_key_ids)),
            )
        )
    )


def unlock_with_recovery_code(officer: Officer, code: str) -> PrivateKey:
    """The officer's key from their recovery code; raises ``keys.WrongSecret`` otherwise."""
    return OFFICER_KEY_RECOVERY_WRAP.unwrap(
        officer.key_wrapped_by_recovery, code, officer_public_id=officer.public_id
    )


def rewrap_officer_key(
    officer: Officer, key: PrivateKey, *, new_password: str, cost: KdfCost
) -> str:
    """Wrap the same key under a new password and a new recovery code (the old one is spent).

    The key pair does not change, so every grant to the officer keeps working: recovering a
    forgotten password keeps access to the unit's tips. Returns the new recovery code.
    """
    recovery = new_recovery_code()
    officer.password_hash = hash_password(new_password, cost=cost)
    officer.key_wrapped_by_password = OFFICER_KEY_PASSWORD_WRAP.wrap(
        key, new_password, cost, officer_public_id=officer.public_id
    )
    officer.key_wrapped_by_recovery = OFFICER_KEY_RECOVERY_WRAP.wrap(
        key, recovery, cost, officer_public_id=officer.public_id
    )
    return recovery


def transfer_tip(session: Session, tip: Tip, tip_key: PrivateKey, target: Unit) -> None:
    """Re-seal the tip key to ``target`` and take it away from the unit that held it.

    Only the tip key moves; the content stays sealed to the tip. Commanders above ``target``
    read it through their chain; the old unit no longer can.
    """
    old_key_ids = [key.id for key in tip.unit.keys] if tip.unit is not None else []
    grant_tip_to_unit(session, tip, tip_key, target)
    new_key = target.current_key
    kept = {new_key.id} if new_key is not None else set()
    stale = [key_id for key_id in old_key_ids if key_id not in kept]
    if stale:
        session.execute(
            delete(KeyGrant).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.subject_id == tip.id,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
                KeyGrant.holder_id.in_(stale),
            )
        )
    tip.unit = target


def grant_unit_versions(
    session: Session, unit: Unit, opened: dict[int, PrivateKey], officer: Officer
) -> list[UnitKey]:
    """Seal to ``officer`` every version of ``unit``'s key that ``opened`` holds.

    Every version, not only the current one: tips and child unit keys sealed under an older
    version (before a rotation of the unit, or of the unit above) stay readable to the new
    key holder, as they are to the one granting. Returns the versions newly granted.
    """
    granted = []
    for version in sorted(unit.keys, key=lambda k: k.version):
        private = opened.get(version.id)
        if private is None:
            continue
        if _grant_row(session, Subject.UNIT_KEY, version.id, Holder.OFFICER, officer.id) is None:
            grant_unit_key_to_officer(session, version, private, officer)
            granted.append(version)
    return granted


def revoke_officer_grants(session: Session, officer: Officer) -> list[Unit]:
    """Delete every unit key grant sealed to ``officer``; the units whose keys they held.

    The rows go, so the account's key no longer opens anything through the database. What the
    officer read, and any copy of a row taken before (a backup), is not taken back: the caller
    rotates the units' keys so that nothing sealed from now on reaches the old versions.
    """
    rows = list(
        session.scalars(
            select(KeyGrant).where(
                KeyGrant.holder_kind == Holder.OFFICER,
                KeyGrant.holder_id == officer.id,
                KeyGrant.subject_kind == Subject.UNIT_KEY,
            )
        )
    )
    key_ids = {row.subject_id for row in rows}
    for row in rows:
        session.delete(row)
    session.flush()
    if not key_ids:
        return []
    units = session.scalars(
        select(Unit).join(UnitKey, UnitKey.unit_id == Unit.id).where(UnitKey.id.in_(key_ids))
    ).unique()
    return sorted(set(units), key=lambda u: u.code)


def key_holders_reaching(session: Session, unit: Unit) -> list[Officer]:
    """Active key-holding officers with a grant of a key of ``unit`` or of a unit above it:
    those whose chain can open ``unit``'s key, so who may approve a grant of it."""
    chain: list[int] = []
    walk: Unit | None = unit
    while walk is not None:
        chain.append(walk.id)
        walk = walk.parent
    key_ids = select(UnitKey.id).where(UnitKey.unit_id.in_(chain))
    holder_ids = select(KeyGrant.holder_id).where(
        KeyGrant.subject_kind == Subject.UNIT_KEY,
        KeyGrant.subject_id.in_(key_ids),
        KeyGrant.holder_kind == Holder.OFFICER,
    )
    return list(
        session.scalars(
            select(Officer).where(
                Officer.id.in_(holder_ids),
                Officer.active.is_(True),
                Officer.role.in_(list(KEY_HOLDING_ROLES)),
            )
        )
    )


def officers_reaching_tip(session: Session, tip: Tip) -> set[int]:
    """Ids of the officers a chain of grants leads from to ``tip`` (read from the rows, no
    key opened): the tip's unit key holders, and those of every unit key above them."""
    keys = set(
        session.scalars(
            select(KeyGrant.holder_id).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.subject_id == tip.id,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
            )
        )
    )
    frontier = set(keys)
    while frontier:
        above = set(
            session.scalars(
                select(KeyGrant.holder_id).where(
                    KeyGrant.subject_kind == Subject.UNIT_KEY,
                    KeyGrant.subject_id.in_(frontier),
                    KeyGrant.holder_kind == Holder.UNIT_KEY,
                )
            )
        )
        frontier = above - keys
        keys |= above
    if not keys:
        return set()
    return set(
        session.scalars(
            select(KeyGrant.holder_id).where(
                KeyGrant.subject_kind == Subject.UNIT_KEY,
                KeyGrant.subject_id.in_(keys),
                KeyGrant.holder_kind == Holder.OFFICER,
            )
        )
    )


def replace_officer_key(officer: Officer, *, password: str, cost: KdfCost, totp_secret: str) -> str:
    """A new key pair for an account whose password an admin reset (nobody can open the old
    one: the admin knows neither the password nor the recovery code). Grants to the old key
    are worthless; the caller deletes them. Returns the new recovery code."""
    private = generate_keypair()
    recovery = new_recovery_code()
    officer.public_key = private.public_key.to_bytes()
    officer.key_certificate = certify(officer_subject(officer.public_id), private.public_key)
    officer.password_hash = hash_password(password, cost=cost)
    officer.key_wrapped_by_password = OFFICER_KEY_PASSWORD_WRAP.wrap(
        private, password, cost, officer_public_id=officer.public_id
    )
    officer.key_wrapped_by_recovery = OFFICER_KEY_RECOVERY_WRAP.wrap(
        private, recovery, cost, officer_public_id=officer.public_id
    )
    reseal_totp_secret(officer, totp_secret)
    return recovery


def reseal_totp_secret(officer: Officer, totp_secret: str) -> None:
    """A new TOTP secret, sealed to the account's public key (no private key needed): the
    officer enrols it at the next login."""
    officer.sealed_totp_secret = OFFICER_TOTP_SECRET.seal(
        officer.public, totp_secret.encode(), officer_public_id=officer.public_id
    )
    officer.totp_confirmed_at = None
    officer.totp_last_step = None


def certify_existing(session: Session) -> dict[str, int]:
    """Certify every stored public key that has no certificate yet (upgrade to 0022 only).

    Trust on first use: whatever key a row holds now is certified, so run it once, right
    after the upgrade, with the services stopped and the database as it was before
    (docs/operations.md). Keys that already carry a certificate are left alone, valid or not:
    a wrong certificate stays a refusal, never laundered.
    """
    counts = {"tips": 0, "unit_keys": 0, "officers": 0, "transit_epochs": 0}
    for tip in session.scalars(select(Tip).where(Tip.key_certificate.is_(None))):
        tip.key_certificate = certify(tip_subject(tip.public_id), tip.public)
        counts["tips"] += 1
    for key in session.scalars(select(UnitKey).where(UnitKey.key_certificate.is_(None))):
        subject = unit_key_subject(key.id, key.unit_id, key.version)
        key.key_certificate = certify(subject, key.public)
        counts["unit_keys"] += 1
    for officer in session.scalars(select(Officer).where(Officer.key_certificate.is_(None))):
        officer.key_certificate = certify(officer_subject(officer.public_id), officer.public)
        counts["officers"] += 1
    for epoch in session.scalars(
        select(TransitEpoch).where(TransitEpoch.key_certificate.is_(None))
    ):
        epoch.key_certificate = certify(transit_subject(epoch.id), epoch.public)
        counts["transit_epochs"] += 1
    return counts
