"""``memos batch``: one command over many cubes, on a Ray cluster with ``--ray``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from memos_cli.batch.cluster import joined
from memos_cli.batch.convert import convert_many
from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.help import MemosTyper
from memos_cli.cli.output import DataTable, out, print_json, progress_bar
from memos_cli.errors import MemosError, UsageError

batch_app = MemosTyper(help="One command over many cubes, on a Ray cluster with --ray.",
                       no_args_is_help=True)


class BatchFailed(MemosError):
    """Some conversions of a batch failed (each named in the output)."""


@batch_app.command("convert")
def convert(
    cubes: list[str] = typer.Argument(..., metavar="CUBE...", help="Cubes: directories, or "
                                      "s3:// (gs://, az://, file://) cubes in a bucket."),
    to: str = typer.Option(..., "--to", help="kv, lora or text, as for memos convert."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
                                     help="The model, as for memos convert."),
    dtype: str | None = typer.Option(None, help="Storage dtype, as for memos convert."),
    chunks: bool = typer.Option(False, "--chunks", help="--to kv: one KV chunk per memory."),
    key: Path | None = typer.Option(None, "--key", help="Re-sign each cube with this key."),
    option: list[str] = typer.Option([], "--set", metavar="NAME[=VALUE]", help="Any other "
                                     "memos convert option, e.g. --set group=session, "
                                     "--set drop-text (repeatable)."),
    ray_address: str | None = typer.Option(
        None, "--ray", metavar="ADDRESS", help="Run each conversion as a Ray task: local, "
        "auto, HOST:PORT or ray://HOST:PORT \\[default: one after another here]."),
    as_json: bool = JSON_OPT,
) -> None:
    """Convert many cubes with the same options, each as `memos convert` would; one that fails
    does not stop the others. Exit 0 when all succeed, else the first failure's exit code.

    Example: [bold]memos batch convert cubes/*.memcube --to kv --chunks --ray local[/bold]
    """
    args = ["--to", to]
    args += ["--model", model] if model else []
    args += ["--dtype", dtype] if dtype else []
    args += ["--chunks"] if chunks else []
    args += ["--key", str(key.resolve())] if key else []
    for o in option:
        name, sep, value = o.partition("=")
        if not name or name.startswith("-") or name in ("json", "output"):
            raise UsageError(f"--set {o!r}: give NAME or NAME=VALUE of a memos convert option")
        args += [f"--{name}"] + ([value] if sep else [])
    if len(set(cubes)) != len(cubes):
        raise UsageError("a cube is named twice: two conversions would race on it")
    with contextlib.ExitStack() as stack:
        ray = None
        if ray_address is not None:
            ray = stack.enter_context(joined(ray_address))
        update = stack.enter_context(progress_bar())
        results = convert_many(cubes, args, ray=ray, progress=update)
    failed = [r for r in results if r["exit_code"] != 0]
    if as_json:
        print_json({"converted": len(results) - len(failed), "failed": len(failed),
                    "results": results})
    else:
        t = DataTable("cube", "result", "seconds")
        for r in results:
            t.add_row(r["cube"], "ok" if not r["exit_code"] else
                      f"exit {r['exit_code']}: {r['error']}", f"{r['seconds']:.1f}")
        out.print(t)
    if failed:
        e = BatchFailed(f"{len(failed)} of {len(results)} conversions failed")
        e.exit_code = int(failed[0]["exit_code"])
        raise e


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
