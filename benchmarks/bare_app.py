"""The baseline for benchmarks/intake.py: a bare Flask endpoint that only parses the JSON body."""

from __future__ import annotations

import json

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.post("/zalo/webhook")
def webhook() -> ResponseReturnValue:
    json.loads(request.get_data())
    return jsonify({"ok": True})
