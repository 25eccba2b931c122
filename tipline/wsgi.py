"""The WSGI entry point for gunicorn: configuration from the environment."""

from tipline.app import create_app
from tipline.files import keep_files_private
from tipline.logs import configure, level_from_env

keep_files_private()  # before the app writes anything (secrets, SQLite, the file store)
configure(level_from_env())  # JSON lines with time, level and request id (tipline.logs)
app = create_app()
