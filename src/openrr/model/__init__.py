"""What a 3D model is and how it is read, shared by the converter and the render server.

* ``scene`` — the in-memory scene graph: nodes, meshes, primitives, materials, levels of detail.
* ``loader`` — ``load_model``: glTF/GLB and ``.arrAsset`` from a path or an http(s) URL into a ``Scene``;
  ``errors`` holds the ``ModelLoadError`` every reader raises.
* ``trimesh_scene`` — a parsed trimesh scene (glTF, OBJ, PLY) as a ``Scene``.
* ``sources`` — which locations a render server may load from (the guard the loader calls);
  ``fetch`` — the loader's HTTP client, pinned to the addresses the guard checked.
* ``budget`` — what loading a model may cost (texture pixels, geometry bytes), checked while reading.
* ``arrasset`` — the ``.arrAsset`` container openrr's converter writes and its render servers read.
* ``lod`` — levels of detail, made by vertex clustering.
* ``skies`` — the panoramas a scene is lit by and seen against: builtins and skies from client images.

Neither ``openrr.render`` nor ``openrr.assets`` (the converter) owns these: both import them, and nothing
here imports either.
"""
