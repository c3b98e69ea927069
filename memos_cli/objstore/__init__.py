"""Cubes on object storage (``s3://``, ``gs://``, ``az://``, ``file://``) through Arrow's
file systems: :mod:`~memos_cli.objstore.uri` opens a store with bounded waits,
:mod:`~memos_cli.objstore.cubes` writes a cube manifest-last and reads it back whole."""
