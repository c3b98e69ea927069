"""Hostile OCI registries (spec §15.4): one case per behaviour of the hostile registry
(``hostile_registry.py``), tried with ``pull``, ``load`` and ``ls`` (and ``push`` for the
upload cases). The cases that are not a usable cube must be refused by ``pull`` and ``load``;
``ls`` reads annotations alone and may list them."""

from __future__ import annotations

from pathlib import Path

from tests.attacks.corpus import Base, Case
from tests.attacks.hostile_registry import names

#: Behaviours whose artifact is a valid cube (odd annotations, or a tag listing that
#: misbehaves): a pull may accept them.
USABLE = {"annotations-list", "annotations-types", "tags-endless", "tags-items", "tags-list",
          "tags-trickle"}


def _case(name: str) -> Case:
    def build(work: Path, base: Base) -> Path:
        assert base.registry, "registry cases need the hostile registry (Base.registry)"
        return Path(f"{base.registry}/{name}")
    return Case(f"registry_{name}", "registry", build,
                expect="any" if name in USABLE else "refuse-fetch")


CASES = [_case(n) for n in names()]
