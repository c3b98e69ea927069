"""Make fixtures/vault-v1: a vault of the generation layout, written by memos before the vault
moved to Lance (commit ef054c8, the last with generation directories), for the migration test.

Run from a worktree of that commit: ``git worktree add /tmp/old ef054c8 && cd /tmp/old &&
PYTHONPATH=/tmp/old python /path/to/make_vault_v1.py /path/to/fixtures/vault-v1``. It is not
run by the tests (today's memos cannot write that layout); it records how the fixture was made:
one load, an update that versions a memory, a re-share, and an archived memory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

RECORDS = [
    {"id": "budget", "content": "The Kestrel budget cap is 48,000 euros.", "owner": "ann",
     "visibility": "shared", "readers": ["bob"]},
    {"id": "launch", "content": "Kestrel launches in June.", "owner": "ann"},
    {"id": "cat", "content": "Ann's cat is called Pixel.", "owner": "ann",
     "visibility": "private"},
    {"id": "old", "content": "An old note nobody reads.", "owner": "ann"},
]
UPDATE = {"id": "launch", "content": "Kestrel launches in May.", "owner": "ann"}
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=timezone.utc)


def main(out: Path) -> None:
    os.environ["MEMOS_HOME"] = "/tmp/mkvault-home"
    os.environ["MEMOS_NO_USAGE"] = "1"
    from memos_cli.governance.access import share
    from memos_cli.models.embedder import Embedder
    from memos_cli.vault import Vault, _drop, load

    shutil.rmtree(out, ignore_errors=True)
    work = Path("/tmp/mkvault-src")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "team.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (work / "update.jsonl").write_text(json.dumps(UPDATE) + "\n")
    enc = Embedder()
    v = Vault(out)
    load(v, work / "team.jsonl", user="ann", embedder=enc, now=NOW)
    load(v, work / "update.jsonl", user="ann", embedder=enc, now=NOW)
    share(v, "launch", user="ann", readers=["bob"], visibility="shared")
    with v.lock():  # archive "old" as `vault gc --cold` does
        st = v.state()
        rows = [i for i, m in enumerate(st.memories) if m.id == "old"]
        st.archived_origin["old"] = st.origin["old"]
        st.archived += [st.memories[rows[0]]]
        _drop(st, rows)
        v.commit(st)
    (out / ".lock").unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
