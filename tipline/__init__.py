"""Tipline: anonymous crime-tip intake from Zalo OAs, encrypted before storage, routed to units.

The web app is built by :func:`tipline.app.create_app`; docs/architecture.md maps the packages.
"""
