"""openrr: an open, self-hosted remote-rendering service with the Azure Remote Rendering contract."""

__version__ = "0.1.0"
