"""The v1 session API of the original ARR documentation (seed 000): timespans, /properties, DELETE to stop."""
