"""``memos ui``: a read-only local web site over a :class:`~memos_cli.api.Session`.

The pages (:mod:`memos_cli.ui.memory_pages`, :mod:`memos_cli.ui.cube_pages`,
:mod:`memos_cli.ui.vault_pages`) build plain dictionaries from the session; the server
(:mod:`memos_cli.ui.server`, Starlette) renders each with a Jinja template, or returns it as
JSON (``Accept: application/json``, or the same path with ``.json``). Everything shown is
filtered for the one user the server was started as (:class:`memos_cli.ui.common.Viewer`):
what that user may not read never leaves the process, counts included; hidden results are
counted, as ``memos search`` counts them.
"""
