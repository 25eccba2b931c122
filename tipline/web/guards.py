"""Input no page of ours can hold, refused before any view sees it."""

from __future__ import annotations

from flask import abort, request

# Machine routes with bodies of their own (JSON, signatures) are checked by their views.
MACHINE_BLUEPRINTS = ("intake", "zalo_simulator")
NUL = "\x00"


def refuse_nul() -> None:
    """400 for a NUL character in the path, the query string or a form field.

    Nobody types one and no field stores one, but PostgreSQL refuses it in any text parameter:
    a username, a receipt code or a public id in a URL carrying it reached a query and failed
    there (psycopg DataError, a 500) instead of being refused here.
    """
    if (request.blueprint or "") in MACHINE_BLUEPRINTS:
        return
    parts = [request.path, *request.args.keys(), *request.args.values()]
    if request.method == "POST":
        parts += [*request.form.keys(), *request.form.values()]
    if any(NUL in part for part in parts):
        abort(400)
