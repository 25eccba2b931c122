"""The intake tier alone, for gunicorn: `gunicorn tipline.wsgi_intake:app`.

Webhook and health check only; deploy it where Zalo can reach it and keep the staff UI
(`tipline.wsgi:app`) on the police network.
"""

from tipline.app import create_app
from tipline.files import keep_files_private
from tipline.logs import configure, level_from_env

keep_files_private()  # before the app writes anything (secrets, SQLite, the file store)
configure(level_from_env())  # JSON lines with time, level and request id (tipline.logs)
app = create_app(staff_ui=False)
