"""gunicorn entry point: `gunicorn api.payments.wsgi:app`."""
from api.payments import create_app

app = create_app()
