"""memcube.sig: signing, verification, tampering (spec §7)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memos_cli.cube import key_fingerprint, verify
from memos_cli.cube.layout import scan_members
from memos_cli.errors import FormatError, IntegrityError, KeyFileError, MemosError, SignatureError


def test_packed_cube_verifies(packed_cube: Path, keys: tuple[Path, Path]) -> None:
    report = verify(packed_cube, keys[1])
    assert report.ok and report.signed and report.signature == "verified"
    assert report.memories == 18


def model_signing_verify(cube: Path, public_key: Path) -> subprocess.CompletedProcess:
    """The signing library's own command, as a user would run it."""
    tool = Path(sys.executable).with_name("model_signing")
    return subprocess.run(
        [str(tool), "verify", "key", "--signature", str(cube / "memcube.sig"),
         "--public_key", str(public_key), str(cube)],
        capture_output=True, text=True, timeout=120)


def test_library_cli_verifies_the_cube(packed_cube: Path, keys: tuple[Path, Path]) -> None:
    proc = model_signing_verify(packed_cube, keys[1])
    assert proc.returncode == 0, proc.stderr
    assert "Verification succeeded" in proc.stdout


def test_library_cli_rejects_other_key(packed_cube: Path, other_keys: tuple[Path, Path]) -> None:
    assert model_signing_verify(packed_cube, other_keys[1]).returncode != 0


def test_wrong_key_is_refused(packed_cube: Path, other_keys: tuple[Path, Path]) -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        verify(packed_cube, other_keys[1])


def test_without_key_signature_is_not_claimed(packed_cube: Path) -> None:
    report = verify(packed_cube)
    assert report.signature == "not checked (no key given)"


def test_every_file_is_tamper_evident(packed_cube: Path, keys: tuple[Path, Path],
                                      tmp_path: Path) -> None:
    files = [f for f in scan_members(packed_cube) if f != "memcube.sig"]
    assert "manifest.json" in files and "memories.arrow" in files
    assert "index.arrow" in files
    for i, rel in enumerate(files):
        cube = tmp_path / f"c{i}.memcube"
        shutil.copytree(packed_cube, cube)
        target = cube / rel
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        with pytest.raises(MemosError) as e:
            verify(cube, keys[1])
        assert isinstance(e.value, (SignatureError, IntegrityError, FormatError)), rel
        if isinstance(e.value, SignatureError):
            assert rel in str(e.value), (rel, str(e.value))


def test_added_and_removed_files_are_detected(cube_copy: Path, keys: tuple[Path, Path]) -> None:
    (cube_copy / "index").mkdir()
    (cube_copy / "index" / "note.txt").write_text("hello")
    with pytest.raises(MemosError, match=r"index/note\.txt"):
        verify(cube_copy, keys[1])  # the closed layout (format 1.5), and signed
    (cube_copy / "index" / "note.txt").unlink()
    (cube_copy / "index.arrow").unlink()
    with pytest.raises(MemosError, match=r"index\.arrow"):
        verify(cube_copy, keys[1])


def test_unsigned_cube(cube_copy: Path, keys: tuple[Path, Path]) -> None:
    (cube_copy / "memcube.sig").unlink()
    assert verify(cube_copy).signature == "unsigned"
    with pytest.raises(SignatureError, match="unsigned"):
        verify(cube_copy, keys[1])


def test_bad_key_files(packed_cube: Path, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        verify(packed_cube, junk)
    with pytest.raises(KeyFileError, match="cannot read"):
        verify(packed_cube, tmp_path / "missing.pub")
    with pytest.raises(KeyFileError):  # a private key where a public one is expected
        verify(packed_cube, keys[0])


def test_key_fingerprint_is_stable(keys: tuple[Path, Path]) -> None:
    fp = key_fingerprint(keys[1])
    assert fp.startswith("sha256:") and fp == key_fingerprint(keys[1])


def test_bundle_is_what_the_spec_says(packed_cube: Path, keys: tuple[Path, Path]) -> None:
    """Spec §7 checked without model-signing, as a second implementation would: resources in
    path-component order, the subject digest over their raw digests, the cube's own name as
    the subject, the key hint, and the DSSE signature over PAE with the public key."""
    import base64
    import hashlib
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    bundle = json.loads((packed_cube / "memcube.sig").read_bytes())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(
        keys[1].read_bytes()).hexdigest()
    env = bundle["dsseEnvelope"]
    body = base64.b64decode(env["payload"])
    st = json.loads(body)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://model_signing/signature/v1.0"
    files = [f for f in scan_members(packed_cube) if f != "memcube.sig"]
    names = [r["name"] for r in st["predicate"]["resources"]]
    assert names == sorted(files, key=lambda p: p.split("/"))
    for r in st["predicate"]["resources"]:
        assert r["digest"] == hashlib.sha256((packed_cube / r["name"]).read_bytes()).hexdigest()
    (subject,) = st["subject"]
    assert subject["name"] == packed_cube.name
    assert subject["digest"]["sha256"] == hashlib.sha256(b"".join(
        bytes.fromhex(r["digest"]) for r in st["predicate"]["resources"])).hexdigest()
    kind = env["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
    key = serialization.load_pem_public_key(keys[1].read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))


def test_git_directories_and_upper_case_suffixes_are_refused(cube_copy: Path) -> None:
    from memos_cli.cube import open_cube

    (cube_copy / ".github").mkdir()
    with pytest.raises(IntegrityError, match="git file"):
        open_cube(cube_copy)
    (cube_copy / ".github").rmdir()
    (cube_copy / "w.PT").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="can run code"):
        open_cube(cube_copy)
