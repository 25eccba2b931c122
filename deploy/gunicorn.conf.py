"""gunicorn settings for both web tiers: `gunicorn -c deploy/gunicorn.conf.py`.

One file, three tiers, chosen by ``TIPLINE_TIER``:

- ``staff`` (default): ``tipline.wsgi:app``, the staff UI (login, inbox, tips, audit) plus the
  anonymous web form. Police network only; the TLS proxy may offer the web form's own paths
  publicly (deploy/nginx/tipline.conf).
- ``intake``: ``tipline.wsgi_intake:app``, the Zalo webhook and /healthz and nothing else:
  the internet-facing tier carries no staff UI, no sessions, no login routes.
- ``public``: ``tipline.wsgi_public:app``, the anonymous web form (/bao-tin, /tra-cuu) with
  the webhook and /healthz, and no staff route: the web form's Argon2id runs (one per
  /tra-cuu post, 64 MiB) in a pool of their own, which cannot starve the officers' workers.
  The proxy then sends the web form's paths here instead of to the staff tier.

The flags are those of `tipline serve` (tipline/cli/server.py): no control socket, an access log of
paths only, underscore headers dropped unless the Zalo simulator is mounted. Everything else
about Tipline comes from its own environment (TIPLINE_*, ZALO_*, and their ``_FILE`` forms).

Tunables (environment): ``TIPLINE_BIND`` (default 127.0.0.1:8000 staff, 127.0.0.1:8001
intake, 127.0.0.1:8002 public; a TLS proxy sits in front; several addresses comma-separated),
``TIPLINE_WEB_WORKERS`` (default two per core).
"""

import os

TIERS = {
    "staff": ("tipline.wsgi:app", "127.0.0.1:8000"),
    "intake": ("tipline.wsgi_intake:app", "127.0.0.1:8001"),
    "public": ("tipline.wsgi_public:app", "127.0.0.1:8002"),
}
tier = os.environ.get("TIPLINE_TIER", "staff")
if tier not in TIERS:
    raise RuntimeError(f"TIPLINE_TIER must be one of {sorted(TIERS)}, not {tier!r}")
wsgi_app, _default_bind = TIERS[tier]
# The app reads its tier too (tipline.config.TIERS): it then loads only that tier's secrets and
# refuses to start without a database and a Redis URL, rather than fall back to local ones.
# gunicorn sets it in its own environment when it starts (not when this file is read).
raw_env = [f"TIPLINE_TIER={tier}"]
proc_name = f"tipline-{tier}"

bind = [address.strip() for address in os.environ.get("TIPLINE_BIND", _default_bind).split(",")]

# Sync workers: each request is short CPU work (verify, seal, one commit; or one page from
# SQL) and a sync worker's memory holds no other request's state. Two per core: while one
# waits on PostgreSQL's commit or, on the staff tier, spends ~1 s in Argon2id for a login,
# the other uses the core. Measured (docs/deploy.md): intake 1,970 req/s at p99 5.4 ms with
# 2 workers on a 2-core box that also ran the load generator.
workers = int(os.environ.get("TIPLINE_WEB_WORKERS", 2 * (os.cpu_count() or 1)))
worker_class = "sync"

# Zalo retries a webhook not answered within 2 s; a stuck intake worker is recycled fast. The
# staff tier's slowest request is a bounded search (decrypt and match), well under 30 s.
timeout = 10 if tier == "intake" else 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then: no state lives in them (sessions are in Redis).
max_requests = 5000
max_requests_jitter = 500

# `tipline serve`'s flags. The default control socket is one per user, shared by every
# gunicorn on the machine (and a writable path under ProtectSystem=strict it would not find).
control_socket_disable = True
accesslog = "-"
errorlog = "-"
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(L)ss'  # paths only: no query strings
# JSON lines (time, level, request id), ids in paths redacted: tipline/logs.py.
logger_class = "tipline.logs.GunicornLogger"
# Zalo's API takes `access_token` and `secret_key` headers, which gunicorn drops (underscores);
# only the simulator (never in production) must see them, as in `tipline serve`.
header_map = "dangerous" if os.environ.get("TIPLINE_SIMULATOR") == "1" else "drop"

# Files created by the app (the file store's sealed blobs) are the service user's alone.
umask = 0o077
# The heartbeat files of the workers: in memory, not on a disk that may be read-only.
_shm = "/dev/shm"  # noqa: S108 - a tmpfs for gunicorn's own heartbeat files, no app data
if os.path.isdir(_shm):
    worker_tmp_dir = _shm
# Request line and header limits: gunicorn's defaults; bodies are capped by the app
# (TIPLINE_MAX_WEBHOOK_BYTES for the webhook, 16 MB for the web form).
