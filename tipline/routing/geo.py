"""Ward boundaries: which current commune a shared GPS point lies in.

The nearest admin-seat centroid is right only about 76 % of the time (research/geo.md §3), so
this is point-in-polygon over the GeoJSON that ``TIPLINE_WARD_BOUNDARIES`` names (keyed by
``properties.code``), with shapely's STRtree. Simplified boundaries leave slivers at shared
edges and miss coastal points: a point in no polygon goes to the nearest one within about
1 km; farther than that the caller falls back to the province.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from pathlib import Path

import shapely  # type: ignore[import-untyped]
from shapely import STRtree
from shapely.geometry import shape  # type: ignore[import-untyped]
from shapely.ops import nearest_points  # type: ignore[import-untyped]

NEAREST_KM = 1.0
_KM_PER_DEGREE = 111.32


class Boundaries:
    """Ward polygons in an STRtree; ``locate`` is about 0.01 ms per point."""

    def __init__(self, features: list[dict[str, object]]) -> None:
        codes: list[int] = []
        geometries = []
        for feature in features:
            props = feature.get("properties") or {}
            geometry = feature.get("geometry")
            if not isinstance(props, dict) or not geometry:
                continue
            code = str(props.get("code", "")).strip()
            if not code.isdigit():
                continue
            codes.append(int(code))
            geometries.append(shape(geometry))
        self.codes = codes
        self.geometries = geometries
        shapely.prepare(geometries)
        self.tree = STRtree(geometries)

    def __len__(self) -> int:
        return len(self.codes)

    def locate(self, lat: float, lon: float) -> tuple[int, bool] | None:
        """(ward code, inside) for the point, or None when no ward is within about 1 km."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            return None
        point = shapely.Point(lon, lat)
        hits = self.tree.query(point, predicate="intersects")
        if len(hits):
            # Overlapping simplified edges: the smallest polygon is the likelier one.
            best = min(hits, key=lambda i: self.geometries[i].area)
            return self.codes[best], True
        # Degrees of longitude shrink with latitude; take the tighter bound to stay ≤ 1 km.
        max_deg = NEAREST_KM / _KM_PER_DEGREE
        nearest = self.tree.query_nearest(point, max_distance=max_deg, return_distance=True)
        indices, distances = nearest
        if not len(indices):
            return None
        best_i = min(
            range(len(indices)),
            key=lambda k: _km(point, self.geometries[indices[k]], float(distances[k])),
        )
        if _km(point, self.geometries[indices[best_i]], float(distances[best_i])) > NEAREST_KM:
            return None
        return self.codes[int(indices[best_i])], False


def _km(point: shapely.Point, geometry: shapely.Geometry, degrees: float) -> float:
    """Approximate ground distance of a small offset in degrees, latitude-corrected."""
    near = nearest_points(point, geometry)[1]
    dlat = (near.y - point.y) * _KM_PER_DEGREE
    dlon = (near.x - point.x) * _KM_PER_DEGREE * math.cos(math.radians(point.y))
    return math.hypot(dlat, dlon) if degrees else 0.0


def read_features(path: Path) -> list[dict[str, object]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    features = data.get("features", []) if isinstance(data, dict) else []
    return [f for f in features if isinstance(f, dict)]


@functools.cache
def load_boundaries(path: str) -> Boundaries:
    """Boundaries read once per process per file (about a second for all 3,321 wards)."""
    return Boundaries(read_features(Path(path)))


def boundaries_from_config(path: Path | None) -> Boundaries | None:
    """The configured boundaries, or None when none are configured or the file is missing."""
    if path is None or not path.exists():
        return None
    return load_boundaries(str(path.resolve()))
