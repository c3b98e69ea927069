"""Names in a vault directory or prefix (spec §16.1), and the removal of what the older
generation layout leaves once a migration is done."""

from __future__ import annotations

import shutil
from pathlib import Path

DB_DIR = "lance"
TABLE = "vault"
CHECKOUT = "CHECKOUT"
VAULT_FORMAT = "memos-vault"
VAULT_VERSION = 2  # 1: generation directories (``memos vault migrate``)
#: A table with a ``seal`` column (spec §16.5): made by the first change of a writer that
#: has a signing key. memos reads both.
SEALED_VERSION = 3
READ_VERSIONS = (VAULT_VERSION, SEALED_VERSION)
#: The generation layout's pointer to its live generation (memos up to 0.1).
LEGACY_CURRENT = "CURRENT"


def remove_legacy(path: Path) -> None:
    """Remove the generation layout's files once the table is in place."""
    for p in path.iterdir():
        if p.name.startswith(("gen-", ".gen-")) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    (path / LEGACY_CURRENT).unlink(missing_ok=True)
