"""The tip page's map (issue 18): where the tip is, drawn from the ward boundaries.

The point is the last location the informant shared (a decrypted message body: it is drawn in
this request and never stored); the commune is the tip's unit when that is a current commune.
triage.commune_map draws the commune of the point (or else the tip's), its neighbours and the
point, as an SVG in the page: no tile server, no script, nothing sent to a third party.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.models import Tip, Unit
from tipline.web.i18n import _
from triage.commune_map import place_map, ward_code
from triage.users import runtime


@dataclass(frozen=True)
class PlaceArea:
    path: str
    kind: str  # "home" (the tip's commune), "point" (the shared point's, if another), "near"
    name: str


@dataclass(frozen=True)
class Place:
    width: float
    height: float
    areas: list[PlaceArea]
    point: tuple[float, float] | None  # map units
    lat_lon: tuple[float, float] | None  # as shared
    home_name: str  # the tip's commune, when drawn
    point_name: str  # the commune of the shared point
    neighbour_names: list[str]


def shared_point(bodies: Iterable[dict[str, Any]]) -> tuple[float, float] | None:
    """The last location among decrypted message bodies, as (lat, lon)."""
    found = None
    for body in bodies:
        location = body.get("location")
        if isinstance(location, dict):
            try:
                lat, lon = float(location["lat"]), float(location["lon"])
            except (KeyError, TypeError, ValueError):
                continue
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                found = (lat, lon)
    return found


def _names(db: Session, wards: set[str]) -> dict[str, str]:
    """Unit names of these ward codes, where this install has the unit (else the code: the
    web process keeps no gazetteer, and an install that imported the units has them all)."""
    codes = [f"v2025:{ward.zfill(5)}" for ward in wards]
    named = dict(db.execute(select(Unit.code, Unit.name).where(Unit.code.in_(codes))).all())
    return {
        ward: named.get(f"v2025:{ward.zfill(5)}") or _("commune %(code)s", code=ward.zfill(5))
        for ward in wards
    }


def tip_place(db: Session, tip: Tip, bodies: Iterable[dict[str, Any]]) -> Place | None:
    """The map of ``tip``'s place, or None (no boundaries, no commune, no point)."""
    boundaries = runtime().config.ward_boundaries
    if boundaries is None or not boundaries.exists():
        return None
    home = ward_code(tip.unit.code) if tip.unit else None
    point = shared_point(bodies)
    if home is None and point is None:
        return None
    drawn = place_map(
        str(boundaries.resolve()), home, (round(point[0], 6), round(point[1], 6)) if point else None
    )
    if drawn is None:
        return None
    names = _names(db, {a.code for a in drawn.map.areas} | {w for w in [drawn.point_ward] if w})
    areas = [
        PlaceArea(
            area.path,
            "home"
            if area.code == drawn.home
            else "point"
            if area.code == drawn.point_ward
            else "near",
            names[area.code],
        )
        for area in drawn.map.areas
    ]
    return Place(
        drawn.map.width,
        drawn.map.height,
        areas,
        drawn.point,
        point,
        names[drawn.home] if drawn.home else "",
        names[drawn.point_ward] if drawn.point_ward else "",
        [a.name for a in areas if a.kind == "near"],
    )
