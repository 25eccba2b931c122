"""The HTML templates (Jinja2), shipped in the wheel as the package ``tipline.templates``.

This file makes the folder a package, so ``importlib.resources.files("tipline.templates")``
finds it in an editable install and in an installed wheel alike (setup.py maps the name).
"""
