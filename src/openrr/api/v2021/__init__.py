"""The 2021-01-01 (and identical 2021-01-01-preview) session API."""
