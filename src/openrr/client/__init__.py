"""Clients of openrr: ``rest`` speaks the control plane's 2021-01-01 API, ``stream`` connects to a session's
render server over WebRTC (video in, camera and scene commands out)."""
