"""memories.arrow: schema and round-trip (spec §4)."""

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memos_cli.cube.memories import SCHEMA, read_memories, write_memories
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
    with pa.memory_map(str(packed_cube / "memories.arrow")) as src:
        reader = pa.ipc.open_file(src)
        assert reader.schema.equals(SCHEMA, check_metadata=True)
        assert reader.read_all().num_rows == 18


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
