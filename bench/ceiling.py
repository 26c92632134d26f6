"""The framework ceiling: bare Flask + Flask-SQLAlchemy inserting one row, on the services' stack.

Same interpreter, same gunicorn (gthread, same workers and threads, via `common.serve`), same
PyMySQL driver and engine options as the services (`models.engine`), same MariaDB server. No auth,
no validation, no audit row, no outbox, no logging per request: what any Flask endpoint that
writes a row pays at least, so `create order ÷ this` is the share of the ceiling our code leaves.

    python -m bench.ceiling --port 0      # prints `listening on http://…` once bound
Reads `BENCH_CEILING_DB_URL`; creates its one table at start.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid

import click
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.serve import DEFAULT_THREADS, DEFAULT_WORKERS, ServeOptions, run
from models.engine import engine_options


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Row(db.Model):
    __tablename__ = "bench_rows"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=True)
    row_uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)


def create_app(url: str) -> Flask:
    app = Flask("ceiling")
    options = engine_options(url)
    app.config["SQLALCHEMY_DATABASE_URI"] = options.pop("url")
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)

    @app.post("/insert")
    def insert():
        body = request.get_json()
        row = Row(row_uuid=str(uuid.uuid4()), payload=json.dumps(body), created_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        db.session.add(row)
        db.session.commit()
        return {"id": row.id, "row_uuid": row.row_uuid}, 201

    @app.get("/health")
    def health():
        return {"status": "ok"}

    with app.app_context():
        db.create_all()
    return app


@click.command()
@click.option("--port", type=int, default=0)
@click.option("--workers", type=int, default=DEFAULT_WORKERS)
@click.option("--threads", type=int, default=DEFAULT_THREADS)
def main(port: int, workers: int, threads: int) -> None:
    app = create_app(os.environ["BENCH_CEILING_DB_URL"])
    run("ceiling", app, ServeOptions(port=port, workers=workers, threads=threads, log_level="WARNING"))


if __name__ == "__main__":
    main()
