"""``memos ui`` (#35): time to first byte and full page load of the search page and of a
memory's page on a 10,000-memory vault, against ``memos search`` one-shot in the same run.

The vault is ``bench/scale.py``'s (10,000 synthetic memories over LoCoMo turns, public, owner
``bench``). One ``memos ui`` server is started and kept; Debian's chromium (headless, through
Playwright) loads each page once to warm up, then 20 search pages (LoCoMo questions, k = 10)
and 20 memory pages (the first hit of each search). Times are the browser's Navigation
Timing: time to first byte is ``responseStart - requestStart``, full load is ``loadEventEnd``
from the navigation's start (HTML, stylesheet, scripts and, on a memory page, the chart). The
reference is ``memos search QUESTION -k 10`` as one process each (wall time, 8 questions).
Medians, milliseconds; the 1-minute load average before and after is reported.

Usage: python bench/ui.py   (writes bench/out/ui.json)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MEMOS_NO_USAGE", "1")

from bench.retrieval import machine  # noqa: E402
from bench.scale import base_vectors, build, turns_and_questions  # noqa: E402
from tests.ui.conftest import free_port  # noqa: E402

OUT = ROOT / "bench" / "out"
TIMING = ("(() => { const n = performance.getEntriesByType('navigation')[0];"
          " return [n.responseStart - n.requestStart, n.loadEventEnd]; })()")


def main() -> None:
    from playwright.sync_api import sync_playwright

    from memos_cli.models.embedder import Embedder

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("bench/ui.py needs Debian's chromium (apt-get install chromium)")
    enc = Embedder()
    turns, questions = turns_and_questions()
    base = base_vectors(enc, turns)
    qs = questions[:21]
    result: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()[0],
                              "memories": 10_000}
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        build(vault, 10_000, turns, base, enc.describe())
        env = {**os.environ, "MEMOS_VAULT": str(vault), "MEMOS_USER": "bench",
               "MEMOS_HOME": str(Path(tmp) / "home")}

        def one_shot(q: str) -> float:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "memos_cli", "search", q, "-k", "10"],
                           env=env, check=True, capture_output=True)
            return (time.perf_counter() - t0) * 1000

        one_shot(qs[0])
        result["memos search one-shot wall"] = round(statistics.median(
            one_shot(q) for q in qs[1:9]), 1)
        port = free_port()
        log = open(Path(tmp) / "ui.log", "wb")  # noqa: SIM115
        server = subprocess.Popen([sys.executable, "-m", "memos_cli", "ui", "--port",
                                   str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True)
                page = browser.new_page()
                deadline = time.monotonic() + 120
                while True:
                    try:
                        page.goto(url + "/")
                        break
                    except Exception:
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise
                        time.sleep(0.5)
                timings: dict[str, list[list[float]]] = {"search": [], "memory": []}
                ids = []
                for n, q in enumerate(qs):
                    page.goto(f"{url}/search?{urlencode({'q': q, 'k': 10})}")
                    if n:
                        timings["search"].append(page.evaluate(TIMING))
                    ids.append(page.locator("#results a.mid").first.get_attribute("href"))
                for n, href in enumerate(ids):
                    page.goto(url + str(href))
                    page.wait_for_load_state("load")
                    if n:
                        timings["memory"].append(page.evaluate(TIMING))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        for name, rows in timings.items():
            result[f"{name} page"] = {
                "time to first byte": round(statistics.median(r[0] for r in rows), 1),
                "full load": round(statistics.median(r[1] for r in rows), 1),
                "pages": len(rows)}
    result["load_after"] = os.getloadavg()[0]
    OUT.mkdir(exist_ok=True)
    (OUT / "ui.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
