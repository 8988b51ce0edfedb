"""openrr's ``.arrAsset``: a converted model laid out to load into a render server with almost no work.

``docs/arrasset.md`` describes it byte by byte. In short: a 64-byte header (magic, format version, where
the manifest and the data are, CRC-32s), a JSON manifest (nodes, materials, images, meshes with their
levels of detail, the buffer table, statistics), then the data: one little-endian array per buffer,
64-byte aligned, which the reader maps with ``numpy.frombuffer`` (no parsing, no copy for float32
positions and uint32 indices). It is not Microsoft's ``.arrAsset`` format, which is undocumented;
``read_asset`` says so when it sees anything else.

* ``layout`` — what an asset holds (``Asset``) and the constants of the byte layout;
* ``vertex`` — ``VertexFormat``, the precision of each vertex stream (ARR's ``vertex`` settings);
* ``writer`` — ``write_asset``;
* ``manifest`` — the header and manifest checks every reading starts with, and ``conversion_hash``;
* ``reader`` — ``read_asset``: the manifest's buffers mapped into a ``Scene``.

Why no compression of geometry by default: measured on a 1.31M-triangle mesh, zlib level 1 saves 46 %
but inflating takes 150 ms, about half of what loading the raw GLB costs, while mapping the raw arrays and
checking their CRC-32 takes about 10 ms. Images compress well more often (flat colours, masks) and their
only alternative is a PNG/JPEG decode, so they are compressed when that saves at least a quarter.

Levels of detail (LODs) are made by ``openrr.model.lod`` and travel on ``Mesh.lods``, in the file and in
memory; the renderer picks the level it draws from each level's ``error``
(``openrr.render.renderer.choose_lod``).

Point clouds (``openrr.model.points``) are stored as a point primitive: positions, RGBA8 colours and the
levels of detail, the points ordered so that every level is a prefix (``openrr.model.point_order``).
``read_asset`` puts each cloud on its node (``Node.points``), its arrays views of the file.

This package's ``__init__`` imports nothing: ``vertex`` stays importable without numpy.
"""
