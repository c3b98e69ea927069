"""``memos batch convert``: many ``memos convert`` runs at once, one Ray task each (or one
after another without a cluster).

Each conversion runs the ``memos convert CUBE ... --json`` command of the worker's own Python
in a child process, so a cube that fails (a bad cube, a full disk, a crash) fails alone, with
the exit code and the one-line error ``memos convert`` itself gives, and the others go on.
The cubes must be reachable from every node: a shared file system, or cubes in object
storage (``s3://...``), which ``convert`` replaces there manifest-last.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

#: CPUs a conversion task asks Ray for (the model's forward passes use them).
TASK_CPUS = 1


def run_one(cube: str, args: Sequence[str]) -> dict[str, Any]:
    """Convert one cube: ``{cube, exit_code, seconds, result | error}``, where ``result`` is
    what ``memos convert --json`` printed and ``error`` its one-line error."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "memos_cli", "convert", cube, *args,
                           "--json"], capture_output=True, text=True, check=False)
    out: dict[str, Any] = {"cube": cube, "exit_code": proc.returncode,
                           "seconds": round(time.perf_counter() - t0, 3)}
    if proc.returncode == 0:
        try:
            out["result"] = json.loads(proc.stdout)
        except ValueError:
            out["result"] = {"output": proc.stdout.strip()[-500:]}
    else:
        # the last line that says something (a usage error comes in a drawn box)
        lines = [t for t in (ln.strip(" │╭╮╰╯─") for ln in proc.stderr.splitlines()) if t]
        out["error"] = (lines[-1] if lines else f"exit {proc.returncode}")[:500]
    return out


def convert_many(cubes: Sequence[str], args: Sequence[str], *, ray: Any = None,
                 progress: Callable[[str, int, int], None] | None = None
                 ) -> list[dict[str, Any]]:
    """Convert every cube with the same ``memos convert`` options ``args``; the results in
    the order of ``cubes`` (see :func:`run_one`). With ``ray`` (a joined
    :func:`memos_cli.batch.cluster.joined` module), one task of :data:`TASK_CPUS` CPUs per
    cube, as many at once as the cluster fits; without, one after another here."""
    results: list[dict[str, Any] | None] = [None] * len(cubes)
    if ray is None:
        for i, cube in enumerate(cubes):
            results[i] = run_one(cube, args)
            if progress is not None:
                progress("converting", i + 1, len(cubes))
        return [r for r in results if r is not None]
    task = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(run_one)
    pending = {task.remote(cube, list(args)): i for i, cube in enumerate(cubes)}
    done = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except Exception as e:  # the task's worker died: that cube failed, alone
                results[i] = {"cube": cubes[i], "exit_code": 14, "seconds": 0.0,
                              "error": f"the Ray task failed: "
                                       f"{str(e).strip().splitlines()[0][:300]}"}
            done += 1
            if progress is not None:
                progress("converting", done, len(cubes))
    return [r for r in results if r is not None]
