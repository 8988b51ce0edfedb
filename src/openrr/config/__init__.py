"""Settings of ``openrr serve``: each option's name, default and help, written once.

* ``option``: how a setting declares itself as an option (``Option``), and how the CLI and the README read
  the declarations (``options()``).
* ``control_plane``, ``render_servers``, ``conversions``: the settings, one model per group (server,
  sessions, limits; render servers, hosts; conversions), each field with its default, bounds and ``Option``.
* ``per_size``: ``SIZE=N`` values, amounts with K/M/G/T, and the per-size defaults.
* ``settings``: ``Settings``, the groups together, loaded from the options as the CLI has them (flat).
* ``reference``: the README's table of options, written from the declarations.
"""
