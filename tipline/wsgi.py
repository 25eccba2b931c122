"""The WSGI entry point for gunicorn: configuration from the environment."""

from tipline.app import create_app

app = create_app()
