"""The usage store: counts, decay, concurrent writers, kills, damaged and newer stores."""

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memos_cli.errors import FormatError
from memos_cli.scheduler.usage import UsageStore, Use, indicators, record_quietly

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def uses(n: int, used: bool = False) -> list[Use]:
    return [Use(f"m{i}", f"sha256:{i:064x}", i + 1, True, used, i % 2 == 0) for i in range(n)]


def test_indicators_count_and_decay(tmp_path: Path) -> None:
    s = UsageStore(tmp_path / "u")
    assert s.indicators() == {} and not s.exists()
    s.record("search", uses(3), at=T0)
    s.record("run", uses(2, used=True), at=T0 + timedelta(days=7))
    ind = s.indicators(now=T0 + timedelta(days=14), half_life=timedelta(days=7))
    m0, m2 = ind["m0"], ind["m2"]
    assert (m0.retrievals, m0.uses, m0.accesses, m0.text_matches) == (2, 1, 2, 2)
    assert m0.first_use == T0 and m0.last_use == T0 + timedelta(days=7)
    assert m0.score == pytest.approx(0.25 + 0.5)  # one access 2 half-lives ago, one 1 ago
    assert (m2.retrievals, m2.uses, m2.last_rank) == (1, 0, 3)
    assert m2.score == pytest.approx(0.25) and m0.unchanged
    s.record("search", [Use("m0", "sha256:" + "f" * 64, 4)], at=T0 + timedelta(days=8))
    after = s.indicators(now=T0 + timedelta(days=8))["m0"]
    assert not after.unchanged and after.last_rank == 4 and after.content_hash.endswith("f" * 64)
    with pytest.raises(ValueError, match="half-life"):
        indicators(s.events(), half_life=timedelta(0))


def _writer(path: str, n: int) -> None:
    s = UsageStore(path)
    for _ in range(n):
        s.record("search", uses(10))


def test_concurrent_writers_lose_no_counts(tmp_path: Path) -> None:
    path = str(tmp_path / "u")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 15)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ind = UsageStore(path).indicators()
    assert len(ind) == 10 and all(u.retrievals == 60 for u in ind.values())
    assert UsageStore(path).events().num_rows == 600


KILLED = """
import sys
from memos_cli.scheduler.usage import UsageStore, Use
s = UsageStore(sys.argv[1])
print("ready", flush=True)
while True:
    s.record("search", [Use(f"m{i}", "sha256:" + "0" * 64, i + 1) for i in range(10)])
"""


@pytest.mark.parametrize("delay", [0.3, 0.9, 1.6])
def test_kill_mid_append_leaves_a_readable_store(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "u"
    UsageStore(path).record("search", uses(10))  # the table exists before the kills
    p = subprocess.Popen([sys.executable, "-c", KILLED, str(path)], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    s = UsageStore(path)
    rows = s.events().num_rows
    assert rows % 10 == 0 and rows >= 10  # whole commits only
    s.record("search", uses(10))
    assert s.events().num_rows == rows + 10


def digest_tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_damaged_store_is_refused_and_kept(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    s = UsageStore(tmp_path / "u")
    s.record("search", uses(3))
    for f in (tmp_path / "u").rglob("*.manifest"):
        f.write_bytes(b"not a lance manifest")
    before = digest_tree(tmp_path / "u")
    with pytest.raises(FormatError, match="unreadable usage store"):
        s.indicators()
    record_quietly(UsageStore(tmp_path / "u"), "search", uses(3))  # a search goes on, warned
    assert "usage not recorded" in capsys.readouterr().err
    assert digest_tree(tmp_path / "u") == before


def test_newer_store_is_refused_and_not_appended_to(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    from memos_cli.scheduler.usage import SCHEMA

    newer = SCHEMA.with_metadata({"memos.format": "memos-usage", "memos.version": "2"})
    lancedb.connect(str(tmp_path / "u")).create_table("usage", schema=newer)
    s = UsageStore(tmp_path / "u")
    with pytest.raises(FormatError, match="newer"):
        s.record("search", uses(2))
    with pytest.raises(FormatError, match="newer"):
        s.indicators()
    table = lancedb.connect(str(tmp_path / "u")).open_table("usage")
    assert table.count_rows() == 0 and isinstance(table.schema, pa.Schema)


def test_not_a_usage_table(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    lancedb.connect(str(tmp_path / "u")).create_table(
        "usage", schema=pa.schema([("memory_id", pa.string())]))
    with pytest.raises(FormatError, match="not a memos usage table"):
        UsageStore(tmp_path / "u").indicators()
