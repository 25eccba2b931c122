"""The routing panel of the tip page: the sealed routing record, made readable.

The record (``service.decision_json``, sealed to the tip key) names units by code. Records
written before issue 17 hold each candidate's reasons as one string ("khớp tên cũ: …; cùng
tỉnh…") and no names: the template iterated over that string and printed it one character
at a time ("k; h; ớ; p…"). This turns old and new records alike into lists of reasons and
unit names, taking names from this install's units (no gazetteer in the web process: it
costs a second and 100 MB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.models import Unit


@dataclass(frozen=True)
class PanelUnit:
    code: str
    name: str
    score: float | None
    reasons: list[str]
    words: str = ""


@dataclass(frozen=True)
class Panel:
    unit_code: str | None
    unit_name: str
    confidence: float
    auto: bool
    needs_location: bool
    reason: str  # the router's fixed word (text, tie, weak…): the template labels it
    candidates: list[PanelUnit] = field(default_factory=list)
    suggestions: list[PanelUnit] = field(default_factory=list)


def _reasons(value: object) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(part) for part in value if str(part).strip()]
    return []


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _units(rows: object) -> list[dict[str, Any]]:
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def routing_panel(session: Session, record: dict[str, Any] | None) -> Panel | None:
    """The panel for a routing record (old or new format), or None without one."""
    if record is None:
        return None
    candidates = _units(record.get("candidates"))
    suggestions = _units(record.get("suggestions"))
    codes = {
        str(row.get("unit") or row.get("unit_code") or row.get("code") or "")
        for row in candidates + suggestions
    } | {str(record.get("unit") or "")}
    codes.discard("")
    names: dict[str, str] = {}
    if codes:
        for code, name in session.execute(select(Unit.code, Unit.name).where(Unit.code.in_(codes))):
            names[code] = name

    def unit(row: dict[str, Any]) -> PanelUnit:
        code = str(row.get("unit") or row.get("unit_code") or row.get("code") or "")
        name = names.get(code) or str(row.get("name") or "") or code
        reasons = _reasons(row.get("reasons", row.get("reason")))
        return PanelUnit(code, name, _float(row.get("score")), reasons, str(row.get("words") or ""))

    unit_code = str(record["unit"]) if record.get("unit") else None
    return Panel(
        unit_code=unit_code,
        unit_name=names.get(unit_code or "") or str(record.get("unit_name") or unit_code or ""),
        confidence=_float(record.get("confidence")) or 0.0,
        auto=bool(record.get("auto")),
        needs_location=bool(record.get("needs_location")),
        reason=str(record.get("reason") or ""),
        candidates=[unit(row) for row in candidates],
        suggestions=[unit(row) for row in suggestions],
    )
