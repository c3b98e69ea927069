"""A memory's lifecycle (MemOS paper §7.2.2: generation, replacement, fusion, deprecation)
and MemDumper: memories are made into cubes (:mod:`~memos_cli.lifecycle.pack`), added to and
versioned (:mod:`~memos_cli.lifecycle.update`) and exported with redaction
(:mod:`~memos_cli.lifecycle.dump`). Archiving cold memories is a vault operation
(:mod:`memos_cli.vault.archive`)."""
