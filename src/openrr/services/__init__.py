"""Orchestration: the only code that changes state. APIs and the CLI call these; they call store and hosts."""
