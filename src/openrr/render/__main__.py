"""Entry point of a render server: ``python -m openrr.render`` with OPENRR_RENDER_SPEC in the environment."""

from openrr.render.server import main

if __name__ == "__main__":
    raise SystemExit(main())
