"""The browser pages the control plane serves at ``/ui/`` (see ``openrr.api.web``).

``static/`` holds plain HTML, CSS and JavaScript ES modules: no build step, and nothing is fetched from
anywhere but the control plane at run time.

* ``index.html``: sign in with an account id and key (exchanged at the STS for a token kept in
  ``sessionStorage``);
* ``dashboard.html``: the account's sessions, kept current; create, extend, stop; links to the viewer and
  to a session's inspector;
* ``viewer.html?session=ID``: the session's WebRTC video, steered with mouse, touch and keyboard, with
  model loading, live stats and the scene tools: entity tree, selection with the outline, materials, cut
  plane, sky and measurement. Signalling goes through the control plane's offer relay.

The JavaScript modules, one concern each: ``auth.js`` (the token in ``sessionStorage``), ``api.js`` (STS,
session REST API, connect tokens), ``ui.js`` (shared DOM and formatting helpers), ``signin.js``,
``dashboard.js``, ``openrr.js`` (the session client any page may embed: connect token, offer relay,
WebRTC, the data channel's v1 requests and the v2 scene API), ``input.js`` (mouse, touch and keyboard
gestures) and ``viewer.js`` (built on ``openrr.js``), whose scene tools are ``tools/*.js``, one module
each, using nothing but ``openrr.js``'s connection. ``examples/embed.html`` is a minimal embedding page.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
