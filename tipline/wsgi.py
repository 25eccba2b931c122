"""The WSGI entry point for gunicorn: configuration from the environment."""

from tipline.app import create_app
from tipline.files import keep_files_private

keep_files_private()  # before the app writes anything (secrets, SQLite, the file store)
app = create_app()
