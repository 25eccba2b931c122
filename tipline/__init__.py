"""Tipline: anonymous crime-tip intake from Zalo OAs, encrypted before storage, routed to units."""

from tipline.app import create_app
from tipline.config import Config

__all__ = ["Config", "create_app"]
