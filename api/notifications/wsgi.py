"""gunicorn entry point: `gunicorn api.notifications.wsgi:app`."""
from api.notifications import create_app

app = create_app()
