"""gunicorn entry point: `gunicorn api.orders.wsgi:app`."""
from api.orders import create_app

app = create_app()
