"""Pure domain model: no I/O, no clocks read directly, no web or database types."""
