"""Maps drawn on the server from the packaged ward boundaries: no tile server, no script.

The boundaries (tipline/routing/data, one polygon per current commune, keyed by its code)
are read once per process, simplified and projected here; templates only draw the paths.
A commune's unit code is ``v2025:<ward code>`` (tipline.units), so a unit finds its area.
The projection is equirectangular, scaled by the cosine of the middle latitude: at a
province's size that is as good as any, and it keeps the arithmetic obvious.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import shapely  # type: ignore[import-untyped]
from shapely.geometry import shape  # type: ignore[import-untyped]

from tipline.routing.geo import read_features

WIDTH = 640.0  # SVG user units; the page scales it to the screen
MARGIN = 8.0
SIMPLIFY_DEGREES = 0.003  # about 300 m: a province map, not a survey


@dataclass(frozen=True)
class Area:
    code: str  # the ward code, e.g. "32134"
    path: str  # SVG path data in map units
    label_x: float
    label_y: float


@dataclass(frozen=True)
class Map:
    width: float
    height: float
    areas: tuple[Area, ...]


@functools.cache
def _geometries(path: str) -> dict[str, shapely.Geometry]:
    """Every commune's simplified polygon, by ward code (read once per process)."""
    found = {}
    for feature in read_features(Path(path)):
        properties = feature.get("properties")
        code = properties.get("code") if isinstance(properties, dict) else None
        geometry = feature.get("geometry")
        if not isinstance(code, str) or not isinstance(geometry, dict):
            continue
        try:
            simplified = shape(geometry).simplify(SIMPLIFY_DEGREES, preserve_topology=True)
        except (ValueError, TypeError, AttributeError):
            continue
        found[code.lstrip("0") or "0"] = simplified
    return found


def ward_code(unit_code: str) -> str | None:
    """The ward code of a current commune unit ("v2025:32134" → "32134"), else None."""
    prefix, _sep, number = unit_code.partition(":")
    return number.lstrip("0") or None if prefix == "v2025" and number.isdigit() else None


def _rings(geometry: shapely.Geometry) -> Iterable[Iterable[tuple[float, float]]]:
    polygons = getattr(geometry, "geoms", [geometry])
    for polygon in polygons:
        if polygon.geom_type != "Polygon":
            continue
        yield polygon.exterior.coords
        yield from (ring.coords for ring in polygon.interiors)


@functools.lru_cache(maxsize=64)
def area_map(boundaries: str, codes: frozenset[str]) -> Map | None:
    """The communes ``codes`` (ward codes) drawn together; None if none has a boundary."""
    geometries = _geometries(boundaries)
    chosen = {code: geometries[code] for code in sorted(codes) if code in geometries}
    if not chosen:
        return None
    min_x, min_y, max_x, max_y = shapely.union_all(list(chosen.values())).bounds
    stretch = math.cos(math.radians((min_y + max_y) / 2))
    span_x = max((max_x - min_x) * stretch, 1e-9)
    span_y = max(max_y - min_y, 1e-9)
    scale = (WIDTH - 2 * MARGIN) / span_x
    height = span_y * scale + 2 * MARGIN

    def point(lon: float, lat: float) -> tuple[float, float]:
        return (MARGIN + (lon - min_x) * stretch * scale, MARGIN + (max_y - lat) * scale)

    areas = []
    for code, geometry in chosen.items():
        parts = []
        for ring in _rings(geometry):
            xy = [point(float(c[0]), float(c[1])) for c in ring]
            parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in xy) + "Z")
        centre = geometry.representative_point()
        label_x, label_y = point(centre.x, centre.y)
        areas.append(Area(code, "".join(parts), round(label_x, 1), round(label_y, 1)))
    return Map(WIDTH, round(height, 1), tuple(areas))
