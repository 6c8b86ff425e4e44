"""Distances on the earth, and a flat grid of cells for neighbour search."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EARTH_RADIUS_M", "Grid", "haversine_m"]

EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class Grid:
    """Square cells of ``cell_m`` metres on an equirectangular projection.

    The east-west scale is taken at the highest |latitude| of the data, where a degree
    of longitude is shortest: projected distances are then never longer than true ones
    (up to rounding, covered by a 1 % margin), so two points within ``cell_m`` of each
    other always fall in the same or adjacent cells and a 3x3 look-up finds them all.
    """

    def __init__(self, cell_m: float, max_abs_lat: float) -> None:
        if cell_m <= 0:
            msg = f"cell size must be positive, got {cell_m}"
            raise ValueError(msg)
        self.cell_m = cell_m * 1.01
        lat = min(abs(max_abs_lat), 89.0)
        self._mx = _M_PER_DEG_LAT * math.cos(math.radians(lat))

    def cell(self, lat: float, lon: float) -> tuple[int, int]:
        return (
            math.floor(lat * _M_PER_DEG_LAT / self.cell_m),
            math.floor(lon * self._mx / self.cell_m),
        )

    def cells(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``cell`` of many points at once: (rows, columns) as int64 arrays."""
        return (
            np.floor(lat * _M_PER_DEG_LAT / self.cell_m).astype(np.int64),
            np.floor(lon * self._mx / self.cell_m).astype(np.int64),
        )

    @staticmethod
    def neighbours(cell: tuple[int, int]) -> list[tuple[int, int]]:
        cy, cx = cell
        return [(cy + dy, cx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
