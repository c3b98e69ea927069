"""KV segment files (spec §10): layout, metadata, refusal of bad files; no model needed."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from memos_cli.cube.kv import (
    QUANT_INT8,
    SegmentMeta,
    dequantize,
    quantize,
    read_meta,
    read_segment,
    write_segment,
)
from memos_cli.errors import FormatError


def meta(dtype: str = "float32", tokens: int = 5, head_dim: int = 8) -> SegmentMeta:
    fp = {"architecture": "LlamaForCausalLM", "num_layers": 2, "num_kv_heads": 2,
          "head_dim": head_dim}
    return SegmentMeta(model="tiny", model_fingerprint=fp, prompt_template={"t": 1},
                       memory_ids=("a", "b"), content_hashes=("sha256:1", "sha256:2"),
                       storage_dtype=dtype, quantization=QUANT_INT8 if dtype == "int8"
                       else "none", num_tokens=tokens, num_layers=2, num_kv_heads=2,
                       head_dim=head_dim,
                       memories=({"id": "a", "content_hash": "sha256:1", "content": "A"},
                                 {"id": "b", "content_hash": "sha256:2", "content": "B"}))


def layers(tokens: int = 5, head_dim: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, tokens, head_dim, generator=g),
             torch.randn(2, tokens, head_dim, generator=g)) for _ in range(2)]


@pytest.mark.parametrize("dtype, tol", [("float32", 0), ("bfloat16", 1e-2), ("float16", 1e-3),
                                        ("int8", 2e-2)])
def test_round_trip(tmp_path: Path, dtype: str, tol: float) -> None:
    p = tmp_path / "s.safetensors"
    ls = layers()
    write_segment(p, meta(dtype), torch.arange(5), ls)
    seg = read_segment(p)
    assert seg.meta == meta(dtype) and seg.token_ids.tolist() == [0, 1, 2, 3, 4]
    for (k, v), (k2, v2) in zip(ls, seg.layers, strict=True):
        assert k2.dtype == torch.float32 and k2.shape == (2, 5, 8)
        scale = max(float(k.abs().max()), float(v.abs().max()))
        assert float((k - k2).abs().max()) <= tol * scale
        assert float((v - v2).abs().max()) <= tol * scale


def test_layout_is_readable_by_plain_safetensors(tmp_path: Path) -> None:
    p = tmp_path / "s.safetensors"
    write_segment(p, meta("int8"), torch.arange(5), layers())
    with safe_open(str(p), framework="pt") as f:
        md = f.metadata()
        assert md["memcube.kv"] == "1" and md["storage_dtype"] == "int8"
        assert json.loads(md["memory_ids"]) == ["a", "b"]
        assert sorted(f.keys())[:4] == ["layers.0.keys", "layers.0.keys.scale",
                                        "layers.0.keys.zero", "layers.0.values"]
        assert f.get_tensor("layers.0.keys.scale").dtype == torch.float16
        assert f.get_tensor("layers.0.keys.scale").shape == (2, 1, 8)  # per channel, 1 group
        assert f.get_tensor("layers.0.values.scale").shape == (2, 5, 1)  # per token


def test_int8_is_about_a_quarter_of_float32(tmp_path: Path) -> None:
    """head_dim 64 as in SmolLM2, per token and KV head: keys 64 int8 + 64 x 4 bytes of
    float16 scale and zero per 32 tokens, values 64 int8 + 4 bytes, against 512 bytes:
    (64 + 8 + 64 + 4) / 512 = 0.273."""
    sizes = {}
    for dtype in ("float32", "int8"):
        p = tmp_path / f"{dtype}.safetensors"
        write_segment(p, meta(dtype, 512, 64), torch.arange(512), layers(512, 64))
        sizes[dtype] = p.stat().st_size
    assert 0.26 < sizes["int8"] / sizes["float32"] < 0.28


def test_key_groups_of_32_tokens(tmp_path: Path) -> None:
    p = tmp_path / "s.safetensors"
    write_segment(p, meta("int8", 70), torch.arange(70), layers(70))
    with safe_open(str(p), framework="pt") as f:
        assert f.get_tensor("layers.0.keys.scale").shape == (2, 3, 8)  # ceil(70 / 32)
    ls = layers(70)
    seg = read_segment(p)
    assert float((seg.layers[0][0] - ls[0][0]).abs().max()) < 0.03


def test_quantize_keeps_range() -> None:
    x = torch.linspace(-3, 5, 256).reshape(1, 256, 1)
    q, s, z = quantize(x, 1)
    assert q.dtype == torch.int8 and float((dequantize(q, s, z) - x).abs().max()) < 0.02


def test_missing_and_misshapen_tensors_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "s.safetensors"
    ls = layers()
    ls[1] = (ls[1][0][:, :4], ls[1][1])
    write_segment(p, meta(), torch.arange(5), ls)
    with pytest.raises(FormatError, match=r"layers\.1\.keys is F32\[2, 4, 8\], expected"):
        read_segment(p)
    t = {"token_ids": torch.arange(5)}
    save_file(t, str(p), metadata=meta().to_metadata())
    with pytest.raises(FormatError, match=r"missing tensor layers\.0\.keys"):
        read_segment(p)


def test_bad_metadata_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "s.safetensors"
    md = meta().to_metadata()
    md["num_layers"] = "3"
    save_file({"token_ids": torch.arange(5)}, str(p), metadata=md)
    with pytest.raises(FormatError, match="disagree with the model fingerprint"):
        read_meta(p)
    md = meta().to_metadata()
    del md["model_fingerprint"]
    save_file({"token_ids": torch.arange(5)}, str(p), metadata=md)
    with pytest.raises(FormatError, match="lacks model_fingerprint"):
        read_meta(p)


def test_truncated_and_oversized_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "s.safetensors"
    write_segment(p, meta(), torch.arange(5), layers())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="not a readable safetensors file"):
        read_segment(p)
    p.write_bytes(b"\xff" * 64)
    with pytest.raises(FormatError, match="not a readable safetensors file"):
        read_segment(p)
    write_segment(p, meta(), torch.arange(5), layers())
    monkeypatch.setattr("memos_cli.cube.kv.MAX_SEGMENT_BYTES", 100)
    with pytest.raises(FormatError, match="over the 100 limit"):
        read_segment(p)
