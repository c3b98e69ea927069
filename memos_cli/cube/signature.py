"""``memcube.sig``: keys, signing and verification with OpenSSF model-signing (spec §7).

The signature is a Sigstore bundle written by the ``model-signing`` library (EC P-256 key,
file serialization, SHA-256 per file) over every file of the cube directory; the library leaves
the signature file itself out of the digest. Any such signature also verifies with the
library's own command::

    model_signing verify key --signature CUBE/memcube.sig --public_key KEY.pub CUBE
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from memos_cli import strictjson
from memos_cli.cube.layout import SIGNATURE, atomic_write_bytes, scan_members
from memos_cli.digest import sha256_bytes, sha256_file
from memos_cli.errors import KeyFileError, SignatureError, TamperedError


def generate_keypair(prefix: str | Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write an EC P-256 key pair: ``PREFIX.key`` (PKCS#8 PEM, unencrypted, mode 0600) and
    ``PREFIX.pub`` (SubjectPublicKeyInfo PEM). Returns both paths.

    Raises:
        KeyFileError: a target exists and ``force`` is false.
    """
    base = Path(prefix)
    priv, pub = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    for p in (priv, pub):
        if p.exists() and not force:
            raise KeyFileError("already exists (use --force to replace it)", path=p)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    base.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(priv, pem, mode=0o600)
    atomic_write_bytes(pub, pub_pem)
    return priv, pub


def _load_public(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read public key: {e.strerror}", path=path) from e
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise KeyFileError("not a PEM public key", path=path) from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise KeyFileError("not an EC P-256 public key", path=path)
    return key


def check_private_key(path: Path) -> None:
    """Raises KeyFileError unless ``path`` holds an unencrypted EC P-256 private key (PEM)."""
    load_private_key(path)


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 private key in ``path`` (unencrypted PEM).

    Raises:
        KeyFileError: unreadable, not PEM, encrypted, or another kind of key.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read private key: {e.strerror}", path=path) from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError("not an unencrypted PEM private key", path=path) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyFileError("not an EC P-256 private key", path=path)
    return key


def key_fingerprint(public_key: str | Path) -> str:
    """``sha256:`` of the DER SubjectPublicKeyInfo of the EC P-256 public key in a file."""
    return fingerprint_of(_load_public(Path(public_key)))


def fingerprint_of(key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:`` of the DER SubjectPublicKeyInfo of ``key``."""
    return sha256_bytes(key.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo))


@functools.cache
def _named_hashing_class() -> type:
    import model_signing
    from model_signing import manifest

    class Named(model_signing.hashing.Config):
        """model-signing's hashing, with the statement's subject named ``subject`` (the
        library names it after the directory hashed: a temporary one, when memos signs)."""

        def __init__(self, subject: str) -> None:
            super().__init__()
            self.subject = subject

        def hash(self, model_path: Any, *, files_to_hash: Any = None) -> Any:
            m = super().hash(model_path, files_to_hash=files_to_hash)
            ser = manifest.SerializationType.from_args(m.serialization_type)
            return manifest.Manifest(self.subject, [ser.new_item(d.identifier, d.digest)
                                                    for d in m.resource_descriptors()], ser)

    return Named


def sign_cube(cube_dir: Path, private_key: str | Path, *, name: str | None = None) -> None:
    """Sign every file of ``cube_dir`` into ``cube_dir/memcube.sig`` (spec §7).

    Call it on a cube that is complete; callers sign a temporary copy and rename it into place,
    passing the final directory ``name`` (default ``cube_dir.name``) that the in-toto
    statement's subject records.

    Raises:
        KeyFileError: the key is missing or is not an EC P-256 private key.
    """
    import model_signing  # deferred: it pulls in sigstore and protobuf

    check_private_key(Path(private_key))
    sig = cube_dir / SIGNATURE
    sig.unlink(missing_ok=True)
    hashing = _named_hashing_class()(name or cube_dir.name).set_ignored_paths(
        paths=[Path(SIGNATURE)])
    config = model_signing.signing.Config().use_elliptic_key_signer(
        private_key=Path(private_key))
    signer = config._signer  # model-signing's EC signer: sign with RFC 6979 nonces
    signer._private_key = _Deterministic(signer._private_key)
    config.set_hashing_config(hashing).sign(cube_dir, sig)


class _Deterministic:
    """An EC private key that signs with deterministic ECDSA (RFC 6979): the same key and
    statement give the same signature, so two signed packs of the same input are byte-identical
    (spec §9.2), and no signature depends on a random nonce. Verification is unchanged:
    any ECDSA verifier accepts it."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes, algorithm: ec.ECDSA) -> bytes:
        return self._key.sign(data, ec.ECDSA(algorithm.algorithm, deterministic_signing=True))


def verify_cube(cube_dir: Path, public_key: str | Path) -> None:
    """Check ``memcube.sig`` against ``public_key`` and every file of the cube.

    Raises:
        SignatureError: the cube is unsigned, the signature is malformed or made by another
            key, or a file was added, removed or changed since signing (the message names it).
        KeyFileError: the public key is missing or not EC P-256.
    """
    import model_signing

    _load_public(Path(public_key))
    sig = cube_dir / SIGNATURE
    if not sig.is_file() or sig.is_symlink():
        raise SignatureError("cube is unsigned (no memcube.sig)", path=cube_dir)
    try:
        (
            model_signing.verifying.Config()
            .use_elliptic_key_verifier(public_key=Path(public_key))
            .verify(cube_dir, sig)
        )
    except ValueError as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Signature mismatch" in text:
            raise TamperedError(f"cube changed since it was signed: {text}",
                                path=cube_dir) from e
        raise SignatureError(f"signature does not verify with {public_key}: {text}",
                             path=sig) from e
    except Exception as e:  # malformed bundle: protobuf/json/key errors of many types
        raise SignatureError(f"signature is malformed or was made by another key "
                             f"({type(e).__name__}: {str(e)[:200]})", path=sig) from e


#: Bundles larger than this are refused before parsing (a cube's bundle lists one digest a
#: file: a few hundred bytes each).
MAX_BUNDLE_BYTES = 64 << 20
PREDICATE_TYPE = "https://model_signing/signature/v1.0"


def check_payload(cube_dir: Path) -> None:
    """Check the signed statement against the cube's files without a trusted key: decode the
    bundle's DSSE payload (an in-toto statement whose predicate lists every signed file's
    SHA-256) and compare it with the files. The signature over the payload is not checked
    here (that needs the signer's key); a payload that no longer describes the files means the
    cube changed after signing, whoever signed it.

    Raises:
        TamperedError: a file added, removed or changed since signing.
        SignatureError: the bundle is unreadable or not a model-signing statement.
    """
    import base64
    import binascii

    sig = cube_dir / SIGNATURE
    try:
        if sig.is_symlink() or sig.stat().st_size > MAX_BUNDLE_BYTES:
            raise SignatureError("signature bundle is a link or too large", path=sig)
        bundle = strictjson.loads(sig.read_bytes())
        env = bundle["dsseEnvelope"]
        if env.get("payloadType") != "application/vnd.in-toto+json":
            raise SignatureError("signature bundle holds no in-toto statement", path=sig)
        statement = strictjson.loads(base64.b64decode(env["payload"], validate=True))
        if statement.get("predicateType") != PREDICATE_TYPE:
            raise SignatureError("signature bundle is not a model-signing statement", path=sig)
        signed = {r["name"]: (r["algorithm"], r["digest"])
                  for r in statement["predicate"]["resources"]}
    except SignatureError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error,
            RecursionError) as e:
        raise SignatureError(f"signature bundle is malformed ({type(e).__name__})",
                             path=sig) from e
    files = [f for f in scan_members(cube_dir) if f != SIGNATURE]
    gone = sorted(set(signed) - set(files))
    if gone:
        raise TamperedError(f"cube changed since it was signed: {gone[0]} was removed",
                            path=cube_dir)
    for name in files:
        if name not in signed:
            raise TamperedError(f"cube changed since it was signed: {name} was added",
                                path=cube_dir)
        algorithm, digest = signed[name]
        if algorithm != "sha256" or sha256_file(cube_dir / name).removeprefix(
                "sha256:") != digest:
            raise TamperedError(f"cube changed since it was signed: {name} differs",
                                path=cube_dir / name)
