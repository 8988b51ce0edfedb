"""The ``openrr`` command line (click + rich)."""
