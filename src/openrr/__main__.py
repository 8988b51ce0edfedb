"""``python -m openrr`` is the ``openrr`` command."""

from openrr.cli.main import cli

cli()
