"""Hostile ``file://`` buckets (spec §15.5): a copy of the signed cube in a bucket folder with
a symbolic link (to a copy outside with the same bytes, so only the link is wrong; to a
folder; to ``/``), a special file, or a name that Rich would read as markup. Tried with
``pull``, ``load``, ``ls`` and ``push --force`` of the base cube onto it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.attacks.corpus import Base, Case


def bucket_case(name: str, make: Callable[[Path, Path], None], folder: str = "bucket",
                expect: str = "refuse") -> Case:
    def build(work: Path, base: Base) -> Path:
        cube = work / folder / "team.memcube"
        cube.parent.mkdir(parents=True)
        shutil.copytree(base.cube, cube)
        make(cube, work)
        return cube
    return Case(f"bucket_{name}", "bucket", build, expect)


def _link_out(rel: str) -> Callable[[Path, Path], None]:
    def make(cube: Path, work: Path) -> None:
        outside = work / "outside" / rel
        outside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(cube / rel), outside)
        os.symlink(outside, cube / rel)
    return make


def _link_to(rel: str, target: str) -> Callable[[Path, Path], None]:
    return lambda cube, work: os.symlink(target, cube / rel)


def _cube_is_link(cube: Path, work: Path) -> None:
    real = work / "elsewhere.memcube"
    shutil.move(str(cube), real)
    os.symlink(real, cube)


def _fifo(cube: Path, work: Path) -> None:
    os.mkfifo(cube / "notes.jsonl")


CASES = [
    bucket_case("link_manifest", _link_out("manifest.json")),
    bucket_case("link_memories", _link_out("memories.arrow")),
    bucket_case("link_index", _link_out("index.arrow")),
    bucket_case("link_root", _link_to("root", "/")),
    bucket_case("link_etc_passwd", _link_to("passwd", "/etc/passwd")),
    bucket_case("cube_is_link", _cube_is_link),
    bucket_case("fifo", _fifo),
    bucket_case("markup_name_link", _link_to("root", "/"), folder="b[/bold]x[link=http://e]"),
    bucket_case("markup_name", lambda cube, work: None, folder="b[/bold]x", expect="any"),
]
