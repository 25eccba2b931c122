"""Maps drawn on the server from the packaged ward boundaries: no tile server, no script.

Two maps: a province's communes (the commander's dashboard, :func:`area_map`) and one tip's
place (the tip page, :func:`place_map`): the commune of the point the informant shared, or
else of the tip's unit, with its neighbours and the point marked.

The boundaries (tipline/routing/data, one polygon per current commune, keyed by its code)
are read once per process, simplified and projected here; templates only draw the paths.
A commune's unit code is ``v2025:<ward code>`` (tipline.units), so a unit finds its area.
The projection is equirectangular, scaled by the cosine of the middle latitude: at a
province's size that is as good as any, and it keeps the arithmetic obvious.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import shapely  # type: ignore[import-untyped]
from shapely.geometry import Point, shape  # type: ignore[import-untyped]

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


Project = Callable[[float, float], tuple[float, float]]


def _draw(
    chosen: dict[str, shapely.Geometry], extra: Iterable[tuple[float, float]] = ()
) -> tuple[Map, Project]:
    """``chosen`` (ward code → geometry) projected to fit the map's width, the points
    ``extra`` (lon, lat) inside the frame too; the map and its projection."""
    frame = [*chosen.values(), *(Point(lon, lat) for lon, lat in extra)]
    min_x, min_y, max_x, max_y = shapely.union_all(frame).bounds
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
    return Map(WIDTH, round(height, 1), tuple(areas)), point


@functools.lru_cache(maxsize=64)
def area_map(boundaries: str, codes: frozenset[str]) -> Map | None:
    """The communes ``codes`` (ward codes) drawn together; None if none has a boundary."""
    geometries = _geometries(boundaries)
    chosen = {code: geometries[code] for code in sorted(codes) if code in geometries}
    if not chosen:
        return None
    return _draw(chosen)[0]


# --- one tip's place: its commune, the neighbours, the point the informant shared -----------

MAX_NEIGHBOURS = 16
TOUCH_DEGREES = 0.002  # simplified borders leave slivers: neighbours within about 200 m
NEAR_DEGREES = 0.05  # a point outside every commune (at sea) is drawn if this close


@functools.cache
def _index(path: str) -> tuple[list[str], shapely.STRtree]:
    """The communes' codes and a spatial index over their polygons (built once)."""
    geometries = _geometries(path)
    codes = list(geometries)
    return codes, shapely.STRtree([geometries[c] for c in codes])


def ward_at(boundaries: str, lat: float, lon: float) -> str | None:
    """The ward code of the commune containing the point, or None."""
    codes, tree = _index(boundaries)
    hits = tree.query(Point(lon, lat), predicate="intersects")
    return codes[int(hits[0])] if len(hits) else None


def neighbours(boundaries: str, code: str) -> list[str]:
    """The communes that share a border with ``code`` (at most MAX_NEIGHBOURS), by code."""
    geometries = _geometries(boundaries)
    if code not in geometries:
        return []
    codes, tree = _index(boundaries)
    around = geometries[code].buffer(TOUCH_DEGREES)
    found = sorted(codes[int(i)] for i in tree.query(around, predicate="intersects"))
    return [c for c in found if c != code][:MAX_NEIGHBOURS]


@dataclass(frozen=True)
class PlaceMap:
    map: Map
    home: str | None  # the commune of the tip's unit, when drawn
    point_ward: str | None  # the commune of the shared point
    point: tuple[float, float] | None  # the shared point in map units, when drawn


@functools.lru_cache(maxsize=256)
def place_map(
    boundaries: str, home: str | None, point: tuple[float, float] | None
) -> PlaceMap | None:
    """A tip's place: the commune of the shared ``point`` (lat, lon), or else the tip's
    commune ``home`` (a ward code), with its neighbours, the point marked. None when there is
    nothing to draw."""
    geometries = _geometries(boundaries)
    point_ward = ward_at(boundaries, *point) if point is not None else None
    centre = point_ward or (home if home in geometries else None)
    if centre is None:
        return None
    codes = [centre, *neighbours(boundaries, centre)]
    chosen = {code: geometries[code] for code in codes}
    shown = None
    if point is not None:
        lat, lon = point
        near = shapely.union_all(list(chosen.values())).buffer(NEAR_DEGREES)
        if near.contains(Point(lon, lat)):
            shown = (lon, lat)
    drawn, project = _draw(chosen, [shown] if shown else [])
    xy = project(*shown) if shown else None
    return PlaceMap(
        drawn,
        home if home in chosen else None,
        point_ward,
        (round(xy[0], 1), round(xy[1], 1)) if xy else None,
    )
