"""Fixtures of the hostile-input tests: the world (tests/hostile/world.py) and its files."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.hostile.world import Deliverer, World, build_world, jpeg
from tipline.runtime import Runtime


@pytest.fixture
def world(app: Flask, runtime: Runtime, units: dict[str, str]) -> World:
    return build_world(app, runtime, units)


@pytest.fixture
def deliver(world: World, sim: str) -> Deliverer:
    return Deliverer(world, sim)


@pytest.fixture
def attachment_a(deliver: Deliverer) -> str:
    """A photo stored on tip A (cleaned, sealed, downloadable by unit A's officers)."""
    return deliver(jpeg())
