"""The public tier, for gunicorn: `gunicorn tipline.wsgi_public:app` (``TIPLINE_TIER=public``).

The anonymous web form (/bao-tin, /tra-cuu) with the webhook and the health check, and no
staff route: each /tra-cuu post runs a 64 MiB Argon2id, and in a pool of its own that work
cannot starve the officers' processes (`tipline.wsgi:app` on the police network).
"""

from tipline.app import create_app
from tipline.files import keep_files_private
from tipline.logs import configure, level_from_env

keep_files_private()  # before the app writes anything (secrets, SQLite, the file store)
configure(level_from_env())  # JSON lines with time, level and request id (tipline.logs)
app = create_app(staff_ui=False, public_form=True)
