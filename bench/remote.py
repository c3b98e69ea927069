"""Object storage against local disk (#16): the same memos commands on a cube and a vault
in a local directory and in a bucket of a local S3 server (moto's server mode on 127.0.0.1,
started here), whole commands timed as a user runs them, medians of ``--runs``.

Commands: ``pack fixtures/corpus -o`` (the 18-memory test corpus), ``verify``, ``search``
(one query), ``load`` into a vault (a new vault each run), ``search --vault`` and ``vault
ls``. The ratio bucket / disk says what the bucket costs here: moto keeps objects in memory
and answers over HTTP on the same machine, so it measures the request overhead of the path,
not a real store's latency.

Usage: python bench/remote.py [--runs 3]
Writes bench/out/remote.json and bench/out/remote.md (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402

OUT = ROOT / "bench" / "out"
QUERY = "What budget did we agree on?"


def memos(*args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "memos_cli", *args], capture_output=True,
                       text=True, cwd=ROOT)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"memos {' '.join(args)}: {r.stderr.strip()}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                       "MEMOS_NO_USAGE": "1"})
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    work = Path(tempfile.mkdtemp(prefix="memos-remote-"))
    os.environ["MEMOS_HOME"] = str(work / "home")
    places = {"disk": str(work), "bucket": "s3://bench"}
    times: dict[str, dict[str, list[float]]] = {p: {} for p in places}
    for run in range(args.runs):
        for place, base in places.items():
            cube, vault = f"{base}/team-{run}.memcube", f"{base}/vault-{run}"
            t = times[place]
            t.setdefault("pack -o", []).append(memos("pack", "fixtures/corpus", "-o", cube))
            t.setdefault("verify", []).append(memos("verify", cube))
            t.setdefault("search (cube)", []).append(memos("search", cube, QUERY))
            t.setdefault("load (new vault)", []).append(
                memos("load", cube, "--vault", vault, "--allow-unsigned"))
            t.setdefault("search --vault", []).append(
                memos("search", QUERY, "--vault", vault, "--as", os.environ.get(
                    "USER", "bench")))
            t.setdefault("vault ls", []).append(memos("vault", "ls", "--vault", vault))
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    med = {p: {k: statistics.median(v) for k, v in t.items()} for p, t in times.items()}
    result = {"machine": machine(), "runs": args.runs, "store": "moto server on 127.0.0.1",
              "seconds": times, "median_s": med,
              "ratio": {k: round(med["bucket"][k] / med["disk"][k], 2) for k in med["disk"]}}
    OUT.mkdir(exist_ok=True)
    (OUT / "remote.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| command | local disk | S3 bucket (moto, 127.0.0.1) | bucket / disk |",
             "|---|---|---|---|"]
    for k in med["disk"]:
        lines.append(f"| `memos {k}` | {med['disk'][k]:.2f} s | {med['bucket'][k]:.2f} s | "
                     f"{result['ratio'][k]:.2f}x |")
    (OUT / "remote.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
