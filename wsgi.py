"""WSGI entry point: `gunicorn wsgi:app`, or `flask --app wsgi dct ...`."""

from dct_platform import create_app

app = create_app()
