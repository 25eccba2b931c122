"""`tipline route`: what the router decides for a text, one or a batch (CONTRACT.md).

`tipline route` needs no database: it shows what the router decides from the words, the OA's
unit code (the province prior) and a point, so operators can check a name before a tip
arrives. ``unit`` is the target code, or the OA's code when the tip would stay there.

Batch (docs/routing.md, "tipline route --batch"): one JSON object per input line (``text``,
``oa``, optional ``lat``/``lon``, optional ``id`` echoed back), one decision per output line
in the same order. ``auto`` is true only when the router itself sends the tip to ``unit`` (a
commune or province the words or the point name); a tip that stays with the receiving unit
for an officer has ``auto`` false and ``unit`` = ``oa``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

import click

from tipline.config import ward_boundaries_from
from tipline.routing.geo import Boundaries, boundaries_from_config
from tipline.routing.router import PlaceDecision, route_text


def _boundaries() -> Boundaries | None:
    return boundaries_from_config(ward_boundaries_from(os.environ.get("TIPLINE_WARD_BOUNDARIES")))


def decision_json(decision: PlaceDecision, oa: str | None) -> dict[str, Any]:
    routed = decision.auto and decision.target is not None
    return {
        "unit": decision.target or oa,
        "confidence": decision.confidence,
        "auto": routed,
        "stays": not routed,
        "needs_location": decision.needs_location,
        "reason": decision.reason,
        "candidates": [c.as_json() for c in decision.candidates],
        "suggestions": [c.as_json() for c in decision.suggestions],
    }


def _point(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise click.UsageError("give both --lat and --lon")
    return (lat, lon)


def _batch(source: TextIO, out: TextIO, boundaries: Callable[[], Boundaries | None]) -> int:
    """One decision per non-empty input line, in order; a bad line gives ``{"error": …}``."""
    count = 0
    for line_no, line in enumerate(source, 1):
        if not line.strip():
            continue
        row: dict[str, Any]
        ident: object = None
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            ident = item.get("id")
            text = item.get("text")
            if text is not None and not isinstance(text, str):
                raise ValueError("text must be a string")
            oa = item.get("oa")
            if oa is not None and not isinstance(oa, str):
                raise ValueError("oa must be a unit code string")
            lat, lon = item.get("lat"), item.get("lon")
            if (lat is None) != (lon is None):
                raise ValueError("give both lat and lon")
            point = (float(lat), float(lon)) if lat is not None and lon is not None else None
            geo = boundaries() if point is not None else None
            row = decision_json(route_text(text or "", oa, point, geo), oa)
        except (ValueError, TypeError) as exc:
            row = {"error": f"line {line_no}: {exc}"}
        if ident is not None:
            row = {"id": ident, **row}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


@click.command("route")
@click.argument("text", required=False)
@click.option("--oa", "oa", default=None, help="Code of the unit whose OA received the tip.")
@click.option("--lat", type=float, default=None)
@click.option("--lon", type=float, default=None)
@click.option("--json", "as_json", is_flag=True, help="The decision as one JSON object.")
@click.option(
    "--batch",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="JSONL with text, oa, lat, lon per line; one decision per output line.",
)
def route(
    text: str | None,
    oa: str | None,
    lat: float | None,
    lon: float | None,
    as_json: bool,
    batch: TextIO | None,
) -> None:
    """Show where the router sends TEXT (a tip's words) received by unit --oa."""
    if batch is not None:
        # Boundaries load (about 2 s) only when a line carries a point.
        _batch(batch, sys.stdout, functools.cache(_boundaries))
        return
    boundaries = _boundaries() if lat is not None or lon is not None else None
    if text is None and lat is None:
        raise click.UsageError("give TEXT, --lat/--lon, or --batch FILE")
    decision = route_text(text or "", oa, _point(lat, lon), boundaries)
    row = decision_json(decision, oa)
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False))
        return
    mode = "tự động" if row["auto"] else "ở lại đơn vị nhận tin: cần cán bộ xem / hỏi vị trí"
    click.echo(f"→ {row['unit'] or '-'}  ({mode}; {decision.reason}; {decision.confidence})")
    for candidate in decision.candidates:
        click.echo(f"  {candidate.code:<14} {candidate.score:5.2f}  {'; '.join(candidate.reasons)}")
    for suggestion in decision.suggestions:
        click.echo(f"  ? {suggestion.code:<12} {'; '.join(suggestion.reasons)}")
