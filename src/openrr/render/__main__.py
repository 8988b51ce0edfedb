"""Entry point of a render server: ``python -m openrr.render`` with OPENRR_RENDER_SPEC in the environment."""

import os

from openrr.memory import apply_ceiling, ceiling_of
from openrr.protocol.handshake import SPEC_ENV

if __name__ == "__main__":
    # First, before the render stack is imported: everything the process allocates counts.
    apply_ceiling(ceiling_of(os.environ.get(SPEC_ENV)))

    from openrr.render.process import main

    raise SystemExit(main())
