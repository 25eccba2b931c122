"""The router against the database: which existing unit a decision names, and the sealed record.

The place router speaks official codes (``v2025:32134``); an install has only the units it
imported or added. A target that is not here falls back to its province's unit, then to the
OA's own unit; a unit with no key yet cannot receive a tip and is skipped the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from keys import (
    PublicKey,
)
from tipline.models import (
    Channel,
    HoldReason,
    OfficialAccount,
    Tip,
    Unit,
)
from tipline.models.sealed_fields import (
    TIP_REROUTE,
    TIP_ROUTING,
)
from tipline.routing.geo import Boundaries
from tipline.routing.places import NEW, gazetteer
from tipline.routing.router import PlaceDecision, Scored, route_text

_OFFICIAL = re.compile(r"^v20\d\d:\d{2,5}$")


@dataclass(frozen=True)
class Candidate:
    unit_code: str
    score: float
    reasons: tuple[str, ...]
    name: str = ""  # the unit's official name, for the routing panel
    words: str = ""  # the tip's words that matched

    def as_json(self) -> dict[str, object]:
        return {
            "unit": self.unit_code,
            "name": self.name,
            "score": self.score,
            "reasons": list(self.reasons),
            "words": self.words,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome for one tip. ``reason`` is a fixed word, safe in plaintext and logs."""

    unit: Unit | None
    confidence: float
    auto: bool
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    suggestions: list[Candidate] = field(default_factory=list)
    needs_location: bool = False
    # Existing units among the candidates (for pre-granting; see jobs/dispatch.py).
    candidate_units: list[Unit] = field(default_factory=list)
    place: PlaceDecision | None = None


_OA_OWNER = select(Unit).join(OfficialAccount).where(OfficialAccount.oa_id == bindparam("oa"))


def oa_owner(session: Session, oa_id: str | None) -> Unit | None:
    """The unit ``oa_id`` is attached to, remembered for the session (as :func:`unit_by_code`:
    a dispatch batch asks for the same few OAs again and again)."""
    if oa_id is None:
        return None
    known: dict[str, Unit | None] = session.info.setdefault("units_by_oa", {})
    if oa_id not in known:
        known[oa_id] = session.scalars(_OA_OWNER, {"oa": oa_id}).one_or_none()
    return known[oa_id]


def intake_unit(session: Session, tip: Tip) -> Unit | None:
    """Where a tip came in: its OA's unit, or the unit a web informant chose on the form."""
    if tip.channel == Channel.WEB:
        return tip.unit
    return oa_owner(session, tip.oa_id)


def official_code(unit: Unit) -> str | None:
    """The unit's official code, or its nearest official ancestor's (for the province prior)."""
    current: Unit | None = unit
    while current is not None:
        if _OFFICIAL.match(current.code):
            return current.code
        current = current.parent
    return None


def unit_by_code(session: Session, code: str) -> Unit | None:
    """The unit, remembered for the session (a dispatch batch asks for the same few units
    again and again: about 5 lookups a tip)."""
    known: dict[str, Unit | None] = session.info.setdefault("units_by_code", {})
    if code not in known:
        # Most codes a decision weighs (candidate communes) have no unit here: one read of
        # every unit's code answers them without a query each.
        codes: set[str] | None = session.info.get("unit_codes")
        if codes is None:
            codes = session.info["unit_codes"] = set(session.scalars(select(Unit.code)))
        known[code] = (
            session.scalars(_UNIT_OF_CODE, {"code": code}).one_or_none() if code in codes else None
        )
    return known[code]


_UNIT_OF_CODE = select(Unit).where(Unit.code == bindparam("code"))


def resolve(session: Session, code: str) -> Unit | None:
    """The keyed unit for ``code``: itself, else its province's unit; None if neither."""
    unit = unit_by_code(session, code)
    if unit is not None and unit.current_key is not None:
        return unit
    province = gazetteer().province_of(code)
    if province is not None:
        parent = unit_by_code(session, f"{NEW}:{province:02d}")
        if parent is not None and parent.current_key is not None:
            return parent
    return None


def decide(
    session: Session,
    oa_unit: Unit,
    text: str,
    point: tuple[float, float] | None,
    boundaries: Boundaries | None,
) -> Decision:
    """Route against this install's units; the OA's unit keeps what cannot be placed."""
    place = route_text(text, official_code(oa_unit), point, boundaries)
    gaz = gazetteer()

    def candidate(c: Scored) -> Candidate:
        name = gaz.name_of(c.code) or c.code
        return Candidate(c.code, round(c.score, 2), c.reasons, name, c.words)

    candidates = [candidate(c) for c in place.candidates]
    existing = [u for c in place.candidates if (u := unit_by_code(session, c.code)) is not None]
    unit = oa_unit
    reason: str = place.reason
    if place.auto and place.target is not None:
        resolved = resolve(session, place.target)
        if resolved is not None:
            unit = resolved
            if resolved.code != place.target:
                reason = f"{place.reason}_province_fallback"
        else:
            reason = f"{place.reason}_not_here"
    return Decision(
        unit=unit,
        confidence=place.confidence,
        auto=place.auto,
        reason=reason,
        candidates=candidates,
        suggestions=[candidate(c) for c in place.suggestions],
        needs_location=place.needs_location,
        candidate_units=[u for u in existing if u.current_key is not None],
        place=place,
    )


def route_tip(
    session: Session,
    tip: Tip,
    text: str = "",
    point: tuple[float, float] | None = None,
    boundaries: Boundaries | None = None,
) -> Decision:
    """The decision for ``tip``: held (unit None) while its OA is attached to no unit."""
    oa_unit = intake_unit(session, tip)
    if oa_unit is None:
        return Decision(None, 0.0, False, HoldReason.OA_NOT_ATTACHED)
    return decide(session, oa_unit, text, point, boundaries)


def decision_json(decision: Decision) -> dict[str, object]:
    return {
        "unit": decision.unit.code if decision.unit is not None else None,
        "confidence": decision.confidence,
        "auto": decision.auto,
        "needs_location": decision.needs_location,
        "reason": decision.reason,
        "unit_name": decision.unit.name if decision.unit is not None else None,
        "candidates": [c.as_json() for c in decision.candidates],
        "suggestions": [c.as_json() for c in decision.suggestions],
    }


def seal_decision(tip: Tip, decision: Decision) -> bytes:
    """The candidates and reasons quote the tip's words: sealed to the tip key, never plain."""
    body = json.dumps(decision_json(decision), ensure_ascii=False).encode()
    return TIP_ROUTING.seal(tip.public, body, tip_public_id=tip.public_id)


def seal_reroute(transit_public: PublicKey, tip_public_id: str, lat: float, lon: float) -> bytes:
    """Intake's copy of a location for the re-route job (see ``Tip.sealed_reroute``)."""
    body = json.dumps({"lat": lat, "lon": lon}).encode()
    return TIP_REROUTE.seal(transit_public, body, tip_public_id=tip_public_id)
