"""What a 3D model is and how it is read, shared by the converter and the render server.

* ``scene`` — the in-memory scene graph: nodes, meshes, primitives, materials, levels of detail.
* ``loader`` — reads glTF/GLB and the other input formats, and ``.arrAsset`` files, into a ``Scene``.
* ``arrasset`` — the ``.arrAsset`` container openrr's converter writes and its render servers read.

Neither ``openrr.render`` nor ``openrr.assets`` (the converter) owns these: both import them.
"""
