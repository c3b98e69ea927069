"""KV chunks that follow retrieval: re-rotation exact at layer 0 and one chunk equal to the
text tier on every RoPE family, composition with partial caching, the chunk format in a cube,
and refusals of foreign or damaged chunks."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube, verify
from memos_cli.cube.chunks import check_sets, chunk_key, set_id
from memos_cli.cube.kv import check_segment, read_segment, write_segment
from memos_cli.errors import FormatError, IntegrityError, UsageError
from memos_cli.models import chat
from memos_cli.tiers import chunk_build, chunks, prompt, rope
from memos_cli.tiers import compose as comp
from memos_cli.tiers.convert import select_memories
from memos_cli.tiers.convert_chunks import convert_to_chunks
from memos_cli.tiers.decode import generate_ids
from memos_cli.tiers.plaintext import answer_memories, retrieve
from tests.conftest import FIXED_TIME, ROOT, make_tiny_llama, make_tiny_model, read_json

runner = CliRunner()
Q = "Who owns the vision stack?"

FAMILIES = {
    "llama": ("llama", {}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 16}),
    "mistral": ("mistral", {"sliding_window": 40}),
    "gemma2": ("gemma2", {"head_dim": 16, "sliding_window": 40}),
    "gemma3_text": ("gemma3_text", {"head_dim": 16, "sliding_window": 40,
                                    "layer_types": ["sliding_attention", "full_attention"]}),
    "phi3": ("phi3", {}),
    "phi3_partial": ("phi3", {"partial_rotary_factor": 0.5}),
    "stablelm": ("stablelm", {}),
    "gpt_neox": ("gpt_neox", {}),
    "olmo2": ("olmo2", {}),
    "granite": ("granite", {}),
    "llama_head_dim": ("llama", {"head_dim": 32}),  # not hidden / heads (16)
    "llama_yarn": ("llama", {"rope_parameters": {
        "rope_type": "yarn", "factor": 2.0, "rope_theta": 10000.0,
        "original_max_position_embeddings": 512}}),
}


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_rerotation_exact_and_one_chunk_equals_text(
        name: str, tmp_path: Path, packed_cube: Path) -> None:
    family, extra = FAMILIES[name]
    lm = chat.load(str(make_tiny_model(tmp_path / name, family, **extra)))
    ropes = rope.describe(lm.model)
    assert rope.calibrate(lm.model, ropes) < 1e-4
    mems = open_cube(packed_cube).memories[:3]
    tok = lm.tokenizer
    prefix = chunk_build.build_prefix(lm)
    built = chunk_build.build_chunk(lm, prefix, mems[2:3])
    # the shape the fingerprint (and so every file's header) records is the cache's own
    # (#34: GPT-NeoX ignores num_key_value_heads and attends with all 4 heads)
    fp = lm.fingerprint()
    assert [tuple(k.shape) for k, _ in built.layers] == [
        (fp["num_kv_heads"], built.meta.num_tokens, fp["head_dim"])] * fp["num_layers"]
    write_segment(tmp_path / "chunk.safetensors", built.meta, built.token_ids, built.layers)
    assert check_segment(tmp_path / "chunk.safetensors").num_kv_heads == fp["num_kv_heads"]
    # layer-0 keys depend on the token and its position only: a chunk moved to slot 3 must
    # equal a full prefill's keys there
    ids = [t for p in prompt.pieces(tok, [[m] for m in mems], Q) for t in p.ids]
    full = rope.layer_keys(lm.model, ids, list(range(len(ids))), upto=0).layers[0].keys[0]
    at = len(ids) - len(prompt.closing_ids(tok, Q)) - built.meta.num_tokens
    moved = rope.rerotate(built.layers[0][0], at - built.meta.start_position, ropes[0])
    torch.testing.assert_close(moved, full[:, at:at + built.meta.num_tokens],
                               atol=1e-5, rtol=1e-4)
    # one chunk in slot 1, nothing recomputed: the text tier's greedy output
    text = answer_memories(lm, mems[:1], Q, max_new_tokens=8)
    one = chunk_build.build_chunk(lm, prefix, mems[:1])
    spans = [comp.Span(prefix.token_ids.tolist(), prefix.layers, 0),
             comp.Span(prompt.marker_ids(tok, 1)),
             comp.Span(one.token_ids.tolist(), one.layers, one.meta.start_position, True),
             comp.Span(prompt.closing_ids(tok, Q))]
    c = comp.compose(lm.model, spans)
    assert c.cached_tokens == len(prefix.token_ids) + len(one.token_ids)
    kv = generate_ids(lm, c.ids, cache=c.cache, first_logits=c.logits, max_new_tokens=8)
    assert kv.token_ids == text.token_ids


def test_full_recompute_is_a_plain_prefill(tiny: chat.ChatModel, packed_cube: Path) -> None:
    mems = open_cube(packed_cube).memories[:4]
    prefix = chunk_build.build_prefix(tiny)
    spans = [comp.Span(prefix.token_ids.tolist(), prefix.layers, 0)]
    for slot, m in enumerate(mems, start=1):
        b = chunk_build.build_chunk(tiny, prefix, [m])
        spans += [comp.Span(prompt.marker_ids(tiny.tokenizer, slot)),
                  comp.Span(b.token_ids.tolist(), b.layers, b.meta.start_position, True)]
    spans.append(comp.Span(prompt.closing_ids(tiny.tokenizer, Q)))
    ids = prompt.prompt_ids(tiny.tokenizer, mems, Q)
    with torch.inference_mode():
        ref = tiny.model(input_ids=torch.tensor([ids])).logits[0, -1]
    for rule in ("deviation", "first"):
        c = comp.compose(tiny.model, spans, ratio=1.0, rule=rule)
        assert c.ids == ids and c.recomputed_tokens == sum(len(s.ids) for s in spans[2::2])
        torch.testing.assert_close(c.logits, ref, atol=1e-4, rtol=1e-4)
    none = comp.compose(tiny.model, spans, ratio=0.0)
    half = comp.compose(tiny.model, spans, ratio=0.5, rule="deviation")
    assert none.recomputed_tokens == 0 and 0 < half.recomputed_tokens < c.recomputed_tokens
    assert (half.logits - ref).abs().max() < (none.logits - ref).abs().max()


def test_stored_tensors_are_not_modified(tiny: chat.ChatModel, packed_cube: Path) -> None:
    mems = open_cube(packed_cube).memories[:2]
    prefix = chunk_build.build_prefix(tiny)
    b = chunk_build.build_chunk(tiny, prefix, mems[1:])
    before = [k.clone() for k, _ in b.layers]
    spans = [comp.Span(prefix.token_ids.tolist(), prefix.layers, 0),
             comp.Span(prompt.marker_ids(tiny.tokenizer, 1)),
             comp.Span(prompt.chunk_ids(tiny.tokenizer, mems[:1])),
             comp.Span(prompt.marker_ids(tiny.tokenizer, 2)),
             comp.Span(b.token_ids.tolist(), b.layers, b.meta.start_position, True),
             comp.Span(prompt.closing_ids(tiny.tokenizer, Q))]
    comp.compose(tiny.model, spans, ratio=0.3)
    assert all(torch.equal(k, old) for (k, _), old in zip(b.layers, before, strict=True))


def test_dynamic_rope_is_refused(tmp_path: Path) -> None:
    lm = chat.load(str(make_tiny_model(tmp_path / "dyn", "llama", rope_parameters={
        "rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})))
    with pytest.raises(UsageError, match="depend on the sequence length"):
        rope.describe(lm.model)


@pytest.fixture
def chunk_cube(cube_copy: Path, tiny: chat.ChatModel) -> Path:
    convert_to_chunks(cube_copy, tiny, select_memories(open_cube(cube_copy)))
    return cube_copy


def test_convert_writes_a_content_addressed_chunk_set(chunk_cube: Path,
                                                      tiny: chat.ChatModel) -> None:
    cube = open_cube(chunk_cube)
    assert cube.manifest.format_version == "1.8" and "activation" in cube.manifest.tiers
    (s,) = cube.chunk_sets
    assert len(s.chunks) == len(cube.memories)
    for c in s.chunks:
        (mid,) = c.memory_ids
        assert c.key == cube.by_id[mid].content_hash.removeprefix("sha256:")
        assert c.path == f"kv/chunks/{s.id}/{c.key}.safetensors"
    assert verify(cube).ok
    # converting again reuses every chunk and writes the same bytes
    again = convert_to_chunks(chunk_cube, tiny, select_memories(cube))
    assert again.reused == len(s.chunks)
    assert open_cube(chunk_cube).chunk_sets[0].chunks == s.chunks


def test_run_over_chunks_equals_text_with_one_memory(chunk_cube: Path, tiny: chat.ChatModel,
                                                     embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(chunk_cube)
    a = chunks.answer_chunked(cube, embedder, tiny, Q, k=1, ratio=0.0, max_new_tokens=8)
    found = [r.memory for r in retrieve(cube, embedder, Q, 1)]
    text = answer_memories(tiny, found, Q, max_new_tokens=8)
    assert a.answer == text.text and a.details["hits"] == 1 and a.details["misses"] == 0
    assert [r.memory.id for r in a.memories] == [m.id for m in found]


def test_memories_without_chunks_are_prefilled(cube_copy: Path, tiny: chat.ChatModel,
                                               embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(cube_copy)
    found = [r.memory for r in retrieve(cube, embedder, Q, 4)]
    convert_to_chunks(cube_copy, tiny, found[1::2])  # half of them cached
    cube = open_cube(cube_copy)
    a = chunks.answer_chunked(cube, embedder, tiny, Q, k=4, ratio=1.0, max_new_tokens=8)
    assert (a.details["hits"], a.details["misses"]) == (2, 2)
    assert a.answer == answer_memories(tiny, found, Q, max_new_tokens=8).text


def test_several_cubes_compose_their_chunks(tmp_path: Path, tiny_llama: Path,
                                            tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    """#34: `memos run a b --tier kv` on two cubes with chunk sets retrieves the top k over
    both and composes each memory's chunk from its own cube; fully recomputed, it is the text
    tier over the same memories."""
    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults
    from memos_cli.tiers.plaintext import retrieve_many

    corpus = ROOT / "fixtures" / "corpus"
    a, b = tmp_path / "notes.memcube", tmp_path / "facts.memcube"
    pack([str(corpus / "notes")], a, embedder=embedder, defaults=Defaults(now=FIXED_TIME))
    pack([str(corpus / "facts.jsonl"), str(corpus / "chats.json")], b, embedder=embedder,
         defaults=Defaults(now=FIXED_TIME))
    for c in (a, b):
        convert_to_chunks(c, tiny, select_memories(open_cube(c)))
    cubes = [open_cube(a), open_cube(b)]
    q = "What budget did we agree on, and who owns the vision stack?"
    found = retrieve_many(cubes, embedder, q, 6)
    held = {c.path: {m.id for m in c.memories} for c in cubes}
    assert all(any(r.memory.id in ids for r in found) for ids in held.values())  # both cubes
    got = chunks.answer_chunked(cubes, embedder, tiny, q, k=6, ratio=1.0, max_new_tokens=8)
    assert got.details["hits"] == 6 and len(got.details["chunk_sets"]) == 2
    assert got.answer == answer_memories(tiny, [r.memory for r in found], q,
                                         max_new_tokens=8).text
    r = runner.invoke(app, ["run", str(a), str(b), q, "--tier", "kv", "--model",
                            str(tiny_llama), "-k", "4", "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["details"]
    assert d["hits"] == 4 and len(d["chunk_sets"]) == 2
    r = runner.invoke(app, ["run", str(a), str(b), q, "--tier", "auto", "--model",
                            str(tiny_llama), "-k", "4", "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["run", str(a), str(b), q, "--tier", "kv", "--chunk-set",
                            d["chunk_sets"][0], "--model", str(tiny_llama)])
    assert r.exit_code == 2 and "one cube" in r.output


def test_budget_limits_the_set(cube_copy: Path, tiny: chat.ChatModel) -> None:
    mems = select_memories(open_cube(cube_copy))
    full = convert_to_chunks(cube_copy, tiny, mems)
    small = convert_to_chunks(cube_copy, tiny, mems, max_bytes=full.bytes // 2)
    assert small.bytes <= full.bytes // 2 and small.skipped_for_budget > 0
    assert small.chunks + small.skipped_for_budget == full.chunks
    with pytest.raises(UsageError, match="below the prefix"):
        convert_to_chunks(cube_copy, tiny, mems, max_bytes=10)


def test_session_groups(tmp_path: Path, tiny: chat.ChatModel, embedder, shared_datasets) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults

    out = tmp_path / "conv.memcube"
    pack([shared_datasets / "locomo" / "26.json"], out, embedder=embedder,
         defaults=Defaults(now=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    cube = open_cube(out)
    first = [m for m in cube.memories if m.session_id == cube.memories[0].session_id]
    rep = convert_to_chunks(out, tiny, first, group="session")
    assert rep.chunks == 1 and rep.memories == len(first) > 5
    (c,) = open_cube(out).chunk_sets[0].chunks
    assert c.key == chunk_key([m.content_hash for m in first])


def test_chunk_of_another_model_is_refused(chunk_cube: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    other = chat.load(str(make_tiny_llama(tmp_path / "seed1", seed=1)))
    cube = open_cube(chunk_cube)
    assert chunks.pick_set(cube, other) is None
    with pytest.raises(UsageError, match="no KV chunks for this model"):
        chunks.answer_chunked(cube, embedder, other, Q)
    with pytest.raises(FormatError, match="made by"):
        chunks.pick_set(cube, other, cube.chunk_sets[0].id)


def test_damaged_chunks_are_refused(chunk_cube: Path, tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(chunk_cube)
    s = cube.chunk_sets[0]
    found = [r.memory for r in retrieve(cube, embedder, Q, 1)]
    path = chunk_cube / s.by_memory()[found[0].id].path
    data = path.read_bytes()
    path.write_bytes(data[:-9])  # truncated
    with pytest.raises(IntegrityError, match="differs from the manifest"):
        chunks.answer_chunked(cube, embedder, tiny, Q, k=1)
    path.write_bytes(data[:-8] + b"\x00" * 8)  # same size, other bytes
    with pytest.raises(IntegrityError, match="digest"):
        verify(chunk_cube)
    path.write_bytes(data)
    # a chunk whose memory changed (or left) is refused when the cube is opened for chunks
    hashes = {m.id: m.content_hash for m in cube.memories}
    hashes[found[0].id] = "sha256:" + "0" * 64
    with pytest.raises(IntegrityError, match="other content"):
        check_sets(chunk_cube, cube.chunk_sets, hashes)
    del hashes[found[0].id]
    with pytest.raises(IntegrityError, match="no longer has"):
        check_sets(chunk_cube, cube.chunk_sets, hashes)


def test_chunk_set_id_and_paths_are_checked(chunk_cube: Path) -> None:
    m = read_json(chunk_cube / "manifest.json")
    s = m["kv_chunks"]["sets"][0]
    assert s["id"] == set_id(s["model_fingerprint_sha256"], s["layout_sha256"],
                             s["storage_dtype"], s["group"])
    s["chunks"].append(dict(s["chunks"][0]))  # listed twice
    (chunk_cube / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match="listed twice"):
        open_cube(chunk_cube).chunk_sets  # noqa: B018


def test_cli_convert_and_run_with_chunks(cube_copy: Path, tiny_llama: Path,
                                         tmp_path: Path) -> None:
    r = runner.invoke(app, ["convert", str(cube_copy), "--to", "kv", "--chunks", "--model",
                            str(tiny_llama), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["chunks"] == rep["memories"] > 0
    assert rep["storage_dtype"] == "float16"  # the default for a float32 model (#34)
    r = runner.invoke(app, ["run", str(cube_copy), Q, "--tier", "kv", "--model",
                            str(tiny_llama), "-k", "3", "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["details"]
    assert d["hits"] == 3 and d["recompute_rule"] == "deviation" and d["recomputed_tokens"] > 0
    other = make_tiny_llama(tmp_path / "other", seed=2)
    r = runner.invoke(app, ["run", str(cube_copy), Q, "--tier", "kv", "--model", str(other),
                            "--chunk-set", rep["chunk_set"]])
    assert r.exit_code != 0 and "made by" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["convert", str(cube_copy), "--to", "kv", "--chunks",
                            "--max-bytes", "lots", "--model", str(tiny_llama)])
    assert r.exit_code == 2 and "not a size" in r.output


def test_gpt_neox_chunks_and_segment_verify_and_run(cube_copy: Path, tmp_path: Path) -> None:
    """#34: a GPT-NeoX config carrying num_key_value_heads (2) that the architecture ignores
    (it attends with all 4 heads). The chunk set and segment memos writes must pass memos's
    own verify and run."""
    neox = make_tiny_model(tmp_path / "neox", "gpt_neox")
    for extra in (["--chunks"], []):
        r = runner.invoke(app, ["convert", str(cube_copy), "--to", "kv", *extra, "--model",
                                str(neox), "--json"])
        assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["verify", str(cube_copy)]).exit_code == 0
    heads = {s.num_kv_heads for s in [check_segment(cube_copy / e["path"])
                                      for e in open_cube(cube_copy).segments]}
    assert heads == {4}
    r = runner.invoke(app, ["run", str(cube_copy), Q, "--tier", "kv", "--model", str(neox),
                            "-k", "2", "--max-new-tokens", "3", "--json"])
    assert r.exit_code == 0, r.output


def test_parse_size() -> None:
    from memos_cli.units import parse_size

    assert parse_size("500000") == 500000
    assert parse_size("200MB") == 200_000_000 and parse_size("1.5GiB") == 3 << 29
    for bad in ("0", "-5", "12 parsecs", ""):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_another_cube_names_the_same_memory_alike(chunk_cube: Path, tmp_path: Path,
                                                  tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    """A cube packed from one of the sources (another cube id, fewer memories) gives the
    shared memories' chunks the same path and the same tensors and metadata (not the same
    bytes: safetensors writes its header keys in hash-map order)."""
    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults
    from tests.conftest import CORPUS, FIXED_TIME

    other = tmp_path / "facts.memcube"
    pack([CORPUS / "facts.jsonl"], other, embedder=embedder,
         defaults=Defaults(now=FIXED_TIME, owner="tester"))
    convert_to_chunks(other, tiny, select_memories(open_cube(other)))
    mine = {c.key: c for c in open_cube(chunk_cube).chunk_sets[0].chunks}
    theirs = open_cube(other).chunk_sets[0].chunks
    assert open_cube(other).manifest.cube_id != open_cube(chunk_cube).manifest.cube_id
    shared = [c for c in theirs if c.key in mine]
    assert shared and len(shared) == len(theirs) < len(mine)
    for c in shared:
        assert c.path == mine[c.key].path
        x, y = read_segment(chunk_cube / c.path), read_segment(other / c.path)
        assert x.meta == y.meta and torch.equal(x.token_ids, y.token_ids)
        assert all(torch.equal(p, q) for a, b in zip(x.layers, y.layers, strict=True)
                   for p, q in zip(a, b, strict=True))


def test_progress_shows_from_the_start(cube_copy: Path, tiny_llama: Path) -> None:
    """#28: `convert --to kv --chunks` (20-140 s) showed no progress until its first chunk; the
    bar starts at 0 of N before any work."""
    from memos_cli.tiers.convert_chunks import convert_to_chunks

    calls: list[tuple[int, int]] = []
    mems = open_cube(cube_copy).memories[:3]
    convert_to_chunks(cube_copy, chat.load(str(tiny_llama)), mems,
                      progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
