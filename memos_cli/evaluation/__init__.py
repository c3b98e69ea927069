"""Measuring answers: ``memos eval``'s question files, scoring and one row per tier
(:mod:`~memos_cli.evaluation.evaluate`), and what an adapter makes the model forget
(:mod:`~memos_cli.evaluation.forgetting`)."""
