"""MemScheduler (MemOS paper §5.2; spec §13): what lives outside cubes and moves memories
between tiers by their use.

- :mod:`~memos_cli.scheduler.usage`: the usage store (retrievals, uses, decayed score);
- :mod:`~memos_cli.scheduler.chunks`: the content-addressed KV chunk store under
  ``MEMOS_HOME``;
- :mod:`~memos_cli.scheduler.policy`: the policies, the plan (promote, evict, parameter-tier
  candidates, cold memories) and applying it.

A signed cube's files are never changed by any of them.
"""
