"""What lives outside cubes, under ``MEMOS_HOME`` or in a vault: usage indicators
(:mod:`memos_cli.store.usage`) and the content-addressed KV chunk store
(:mod:`memos_cli.store.chunks`). A signed cube's files are never changed by either."""
