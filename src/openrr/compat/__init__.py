"""Adaptations to third-party internals, one module per library, each applied in one place.

Each module names the internals it relies on, and ``tests/unit/test_compat.py`` fails loudly when an upgrade
removes one of them.
"""
