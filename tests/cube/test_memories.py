"""memories.arrow: schema and round-trip (spec §4)."""

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memos_cli.cube.memories import SCHEMA, SCHEMA_1, read_memories, write_memories
from memos_cli.errors import FormatError
from memos_cli.memory import Memory
from tests.test_memory import memories


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(memories(), max_size=6, unique_by=lambda m: m.id))
def test_arrow_round_trip(tmp_path: Path, mems: list[Memory]) -> None:
    p = tmp_path / "m.arrow"
    write_memories(p, mems)
    assert read_memories(p) == mems


def test_file_is_arrow_ipc_file_with_schema(packed_cube: Path) -> None:
    """No memory of the packed corpus supersedes another: the file has the schema of format
    1.6 (memories/1), which older readers read (spec §4.6)."""
    with pa.memory_map(str(packed_cube / "memories.arrow")) as src:
        reader = pa.ipc.open_file(src)
        assert reader.schema.equals(SCHEMA_1, check_metadata=True)
        assert reader.read_all().num_rows == 18


def test_validity_columns_are_written_when_a_memory_has_them(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    t0, t1 = (datetime(2026, 1, d, tzinfo=timezone.utc) for d in (1, 2))
    a = Memory.create("the lab meeting is in B12", now=t0, event_time=t0)
    b = Memory.create("the lab meeting moved to C3", now=t1, event_time=t1,
                      supersedes=a.id, supersession={"rule": "changed value"})
    a = dataclasses.replace(a, valid_to=t1, superseded_by=b.id)
    write_memories(tmp_path / "m.arrow", [a, b])
    with pa.memory_map(str(tmp_path / "m.arrow")) as src:
        assert pa.ipc.open_file(src).schema.equals(SCHEMA, check_metadata=True)
    back = read_memories(tmp_path / "m.arrow")
    assert back == [a, b] and back[0].valid_to == t1 and back[1].supersession == {
        "rule": "changed value"}
    with pytest.raises(FormatError, match="declares an older format"):
        read_memories(tmp_path / "m.arrow", validity=False)


def test_other_schema_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "m.arrow"
    t = pa.table({"id": ["a"], "content": ["x"]})
    with pa.OSFile(str(p), "wb") as f, pa.ipc.new_file(f, t.schema) as w:
        w.write_table(t)
    with pytest.raises(FormatError, match="missing column content_hash"):
        read_memories(p)


def test_truncated_file_is_refused(packed_cube: Path, tmp_path: Path) -> None:
    p = tmp_path / "m.arrow"
    p.write_bytes((packed_cube / "memories.arrow").read_bytes()[:500])
    with pytest.raises(FormatError, match="not a readable Arrow IPC file"):
        read_memories(p)
