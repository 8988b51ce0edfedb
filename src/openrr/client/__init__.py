"""Clients of openrr: ``rest`` speaks the control plane's 2021-01-01 API."""
