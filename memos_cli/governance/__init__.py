"""MemGovernance (MemOS paper §4.2 and §7.2.3; spec §14): who may read and change a memory.

- :mod:`~memos_cli.governance.policy`: the read and write decisions and the identity a
  command acts as;
- :mod:`~memos_cli.governance.access`: access control applied to a vault's memories;
- :mod:`~memos_cli.governance.roles`: a vault's role table;
- :mod:`~memos_cli.governance.trust`: the signers whose cubes ``memos load`` accepts;
- :mod:`~memos_cli.governance.redact`: personal data found and replaced in dumps.

Principal names (``ann``, ``ann/manager``, ``role:analysts``) live one floor down, in
:mod:`memos_cli.principal`, so that a memory record can check its owner without this package.
"""
