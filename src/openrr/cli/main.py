"""``openrr``: the command group. Each sub-group lives in a module of its own."""

from __future__ import annotations

import click

from openrr import __version__, log_redaction
from openrr.cli.accounts import accounts
from openrr.cli.cluster import cluster
from openrr.cli.connect import connect
from openrr.cli.conversions import conversions
from openrr.cli.keys import keys
from openrr.cli.models import models
from openrr.cli.serve import serve
from openrr.cli.sessions import sessions


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="openrr")
def cli() -> None:
    """openrr: self-hosted remote rendering with the Azure Remote Rendering session API."""
    log_redaction.install()  # no URL query string in any log line of any command


cli.add_command(serve)
cli.add_command(accounts)
cli.add_command(sessions)
cli.add_command(connect)
cli.add_command(conversions)
cli.add_command(models)
cli.add_command(cluster)
cli.add_command(keys)
