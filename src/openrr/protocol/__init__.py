"""The contracts both ends of a connection import, and nothing else.

* ``handshake`` — control plane ↔ render server: the spec a render server starts from, its ready callback,
  heartbeats and self-stops, connect tokens, and the offer a client posts to start WebRTC.
* ``datachannel`` — client ↔ render server: the versioned JSON messages on the WebRTC data channel, spoken by
  the Python client (``openrr.client``), the browser viewer and the render server alike.
* ``builtin_models`` — the ``builtin://`` models every render server generates itself.

Pure: no I/O and no GL, video or web framework, so every side can import it.
"""
