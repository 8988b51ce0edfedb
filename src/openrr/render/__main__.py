"""Entry point of a render server: ``python -m openrr.render`` with OPENRR_RENDER_SPEC in the environment."""

import os
import sys

from openrr.extras import MissingExtra, needs
from openrr.memory import apply_ceiling, ceiling_of
from openrr.protocol.handshake import SPEC_ENV

if __name__ == "__main__":
    # First, before the render stack is imported: everything the process allocates counts.
    apply_ceiling(ceiling_of(os.environ.get(SPEC_ENV)))

    try:
        with needs("render", "A render server"):
            from openrr.render.process import main
    except MissingExtra as exc:
        # One line in the server's log, which the session's error quotes (openrr.hosts.exits).
        print(exc.message, file=sys.stderr)
        raise SystemExit(1) from None

    raise SystemExit(main())
