"""MemStore (MemOS paper §7.1.1): publish cubes to OCI registries and install them from there
(spec/memcube.md §15).

- :mod:`~memos_cli.memstore.ref`: ``oci://`` references.
- :mod:`~memos_cli.memstore.artifact`: a cube as an OCI artifact; the checks before a pull.
- :mod:`~memos_cli.memstore.registry`: the registry, through oras-py, with timeouts.
- :mod:`~memos_cli.memstore.push`, :mod:`~memos_cli.memstore.pull`,
  :mod:`~memos_cli.memstore.listing`: ``memos push``, ``pull``/``load``, ``ls``/``outdated``.
"""
