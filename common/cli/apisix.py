"""`cfmp gateway render-apisix`: write APISIX's standalone files from the gateway's route table.

A subcommand of `cfmp gateway` because it is the same gateway, deployed: the rendering itself lives
in `gateway/apisix_render.py` (pure, tested); this only picks the directory and reports.
"""
from __future__ import annotations

from pathlib import Path

import click

DEFAULT_OUT = Path("gateway") / "apisix"


@click.command("render-apisix")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Directory for config.yaml and apisix.yaml.")
def render_apisix(out: Path) -> None:
    """Write APISIX config.yaml and apisix.yaml from gateway/routes.py."""
    from gateway.apisix_render import write  # PyYAML and the route table only when asked

    for path in write(out):
        click.echo(f"wrote {path}")
