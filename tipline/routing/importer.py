"""`tipline units import`: the national structure of police units, from the gazetteer.

Current (default): 34 provincial units and 3,321 commune units (``v2025:`` codes). Legacy
(``--legacy``): the pre-2025 three tiers, 63 / 696 / 10,051 (``v2024:`` codes), for installs
that still run district units. Idempotent: existing codes are left as they are, so a re-run
after a gazetteer update adds only what is new. OAs are attached separately (``set-oa``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline import audit
from tipline.keychain import create_unit_key
from tipline.models import Unit, UnitLevel
from tipline.routing.places import NEW, OLD, gazetteer, split_type

_UNIT_WORD = {
    "tinh": "tỉnh",
    "thanh pho": "thành phố",
    "xa": "xã",
    "phuong": "phường",
    "dac khu": "đặc khu",
    "thi tran": "thị trấn",
    "huyen": "huyện",
    "quan": "quận",
    "thi xa": "thị xã",
}


def police_name(official_name: str, type_word: str) -> str:
    """ "Xã Lương Thế Trân" → "Công an xã Lương Thế Trân"."""
    _, short = split_type(official_name)
    return f"Công an {_UNIT_WORD.get(type_word, type_word)} {short}".strip()


@dataclass(frozen=True)
class ImportResult:
    provinces: int
    districts: int
    communes: int
    skipped: int


def _add(
    session: Session,
    existing: dict[str, Unit],
    code: str,
    name: str,
    level: str,
    parent: Unit | None,
) -> bool:
    if code in existing:
        return False
    unit = Unit(code=code, name=name, level=level, parent=parent)
    session.add(unit)
    existing[code] = unit
    return True


def import_units(session: Session, *, legacy: bool = False) -> ImportResult:
    """Create the units of the current (or pre-2025) structure that are not here yet."""
    gaz = gazetteer()
    existing = {unit.code: unit for unit in session.scalars(select(Unit))}
    counts = {"province": 0, "district": 0, "commune": 0, "skipped": 0}

    def add(code: str, name: str, level: str, parent: Unit | None) -> None:
        counts[level if _add(session, existing, code, name, level, parent) else "skipped"] += 1

    if not legacy:
        for code, (name, type_word) in sorted(gaz.provinces.items()):
            add(f"{NEW}:{code:02d}", police_name(name, type_word), UnitLevel.PROVINCE, None)
        for code, (name, type_word, province) in sorted(gaz.wards.items()):
            parent = existing[f"{NEW}:{province:02d}"]
            add(f"{NEW}:{code:05d}", police_name(name, type_word), UnitLevel.COMMUNE, parent)
    else:
        from vietnam_provinces.legacy import base as old

        for old_province in old.Province.iter_all():
            type_word = "thanh pho" if "thành phố" in old_province.name.lower() else "tinh"
            old_code = f"{OLD}:{old_province.code.value:02d}"
            add(old_code, police_name(old_province.name, type_word), UnitLevel.PROVINCE, None)
        for district in old.District.iter_all():
            parent = existing[f"{OLD}:{district.province_code.value:02d}"]
            _, type_word, _ = gaz.old_districts.get(district.code.value, ("", "huyen", 0))
            old_code = f"{OLD}:{district.code.value:03d}"
            add(old_code, police_name(district.name, type_word), UnitLevel.DISTRICT, parent)
        for ward in old.Ward.iter_all():
            parent = existing[f"{OLD}:{ward.district_code.value:03d}"]
            type_word = split_type(ward.name)[0]
            old_code = f"{OLD}:{ward.code.value:05d}"
            add(old_code, police_name(ward.name, type_word), UnitLevel.COMMUNE, parent)
    session.flush()
    # One audit event per import (not 3,355): which structure, how many units were added.
    audit.record(
        session,
        action=audit.actions.UNIT_CREATE,
        object_id=None,
        detail={
            "import": OLD if legacy else NEW,
            "provinces": str(counts["province"]),
            "districts": str(counts["district"]),
            "communes": str(counts["commune"]),
        },
    )
    # Units under a keyed parent get their key now (sealed to the parent); the others when
    # their first officer is enrolled (units.add_unit does the same).
    for unit in existing.values():
        if not unit.keys and unit.parent is not None and unit.parent.current_key is not None:
            create_unit_key(session, unit)
    return ImportResult(
        counts["province"], counts["district"], counts["commune"], counts["skipped"]
    )
