"""The per-session render server (``python -m openrr.render``). Imports only ``openrr.protocol.handshake``."""
