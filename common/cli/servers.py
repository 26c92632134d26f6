"""`cfmp serve SERVICE` and `cfmp gateway`: one HTTP app per process, under gunicorn or `--dev`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from common.cli.apisix import render_apisix
from common.cli.apps import GATEWAY_APP, load_factory, service_app
from common.logging import configure_logging
from common.serve import DEFAULT_THREADS, DEFAULT_WORKERS, ServeOptions, run
from common.settings import Settings


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every HTTP process takes, declared once for `serve` and `gateway`."""
    for decorator in reversed((
        click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
        click.option("--port", type=click.IntRange(0, 65535), default=None,
                     help="Port to bind; default from settings (e.g. ORDERS_PORT), 0 picks a free one."),
        click.option("--workers", type=click.IntRange(1), default=DEFAULT_WORKERS, show_default=True,
                     help="gunicorn worker processes."),
        click.option("--threads", type=click.IntRange(1), default=DEFAULT_THREADS, show_default=True,
                     help="Threads per worker."),
        click.option("--dev", is_flag=True,
                     help="werkzeug's threaded server instead of gunicorn (one process)."),
    )):
        command = decorator(command)
    return command


def serve_app(settings: Settings, name: str, factory: str, port: int | None, **options: Any) -> None:
    configure_logging(name, settings)
    app = load_factory(factory)(settings)
    port = settings.ports[name] if port is None else port
    run(name, app, ServeOptions(port=port, log_level=settings.log_level, **options))


@click.command()
@click.argument("service")
@server_options
@click.pass_obj
def serve(settings: Settings, service: str, **options: Any) -> None:
    """Run one service (orders, payments, notifications) over HTTP."""
    serve_app(settings, service, service_app(service), **options)


@click.group(invoke_without_command=True)
@server_options
@click.pass_context
def gateway(ctx: click.Context, **options: Any) -> None:
    """Run the JWT gateway, the single entry for REST clients."""
    if ctx.invoked_subcommand is None:
        serve_app(ctx.obj, "gateway", GATEWAY_APP, **options)


gateway.add_command(render_apisix)
