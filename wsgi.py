"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi run`."""

from portal import create_app
from portal.sessions.devices import load_rules

app = create_app()
# What a worker's first requests would otherwise wait for.
load_rules()
