"""Batch work on a Ray cluster: embedding for ``memos pack --ray`` (:mod:`.embed`) and many
cube conversions at once for ``memos batch convert`` (:mod:`.convert`), on a cluster joined
or started by :mod:`.cluster`. Nothing here is imported unless ``--ray`` or ``batch`` is
used: Ray is an optional dependency (``pip install memos-cli[ray]``)."""
