"""`tipline route`: what the router decides for a text, one or a batch (CONTRACT.md).

`tipline route` needs no database: it shows what the router decides from the words, the OA's
unit code (the province prior) and a point, so operators can check a name before a tip
arrives. ``unit`` is the target code, or the OA's code when the tip would stay there.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

import click

from tipline.config import ward_boundaries_from
from tipline.routing.geo import Boundaries, boundaries_from_config
from tipline.routing.router import PlaceDecision, route_text


def _boundaries() -> Boundaries | None:
    return boundaries_from_config(ward_boundaries_from(os.environ.get("TIPLINE_WARD_BOUNDARIES")))


def decision_json(decision: PlaceDecision, oa: str | None) -> dict[str, Any]:
    return {
        "unit": decision.target or oa,
        "confidence": decision.confidence,
        "auto": decision.auto,
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


def _batch(source: TextIO, out: TextIO, boundaries: Boundaries | None) -> int:
    count = 0
    for line_no, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not an object")
            lat, lon = item.get("lat"), item.get("lon")
            point = (float(lat), float(lon)) if lat is not None and lon is not None else None
            oa = item.get("oa")
            decision = route_text(str(item.get("text") or ""), oa, point, boundaries)
            row = decision_json(decision, oa)
        except (ValueError, TypeError) as exc:
            row = {"error": f"line {line_no}: {exc}"}
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
    boundaries = _boundaries()
    if batch is not None:
        _batch(batch, sys.stdout, boundaries)
        return
    if text is None and lat is None:
        raise click.UsageError("give TEXT, --lat/--lon, or --batch FILE")
    decision = route_text(text or "", oa, _point(lat, lon), boundaries)
    row = decision_json(decision, oa)
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False))
        return
    mode = "tự động" if decision.auto else "cần cán bộ xem / hỏi vị trí"
    click.echo(f"→ {row['unit'] or '-'}  ({mode}; {decision.reason}; {decision.confidence})")
    for candidate in decision.candidates:
        click.echo(f"  {candidate.code:<14} {candidate.score:5.2f}  {'; '.join(candidate.reasons)}")
