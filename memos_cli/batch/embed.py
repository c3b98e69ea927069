"""Embedding for ``memos pack --ray``: Ray Data's ``map_batches`` over a pool of actors, one
encoder each (on a GPU when the cluster has them), the vectors gathered back in row order.

The driver then writes the cube exactly as an in-process pack does (``memories.arrow``,
the index, the manifest), so a cube packed on Ray holds the same memories, the same index
rows in the same order and the same search results as one packed in process; only the last
bits of some vectors may differ, as batches are padded differently. The gathered vectors take
``n * dim * 4`` bytes in the driver (1.5 GB for a million 384-dimension memories).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memos_cli.batch.cluster import cpus, gpus
from memos_cli.errors import RemoteError
from memos_cli.models.embedder import Embedder

#: Texts per Ray Data batch handed to one encoder actor.
BATCH_ROWS = 256


class _Encoder:
    """A Ray Data actor: loads the embedder once and embeds the batches it is given."""

    def __init__(self, model_dir: str) -> None:
        import torch

        torch.set_num_threads(1)  # one actor per CPU: no oversubscription
        self.enc = Embedder(model_dir)
        if torch.cuda.is_available():
            self.enc.to("cuda")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vecs = self.enc.encode([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": vecs}


def embed_on_ray(ray: Any, model_dir: str, texts: list[str], dim: int, *, workers: int,
                 progress: Callable[[str, int, int], None] | None = None,
                 stage: str = "embedding on Ray") -> np.ndarray:
    """Embed ``texts`` on the joined cluster: ``[len(texts), dim] float32`` unit vectors in
    the order of ``texts``. ``workers`` encoder actors (each one GPU when the cluster has
    GPUs, else one CPU); ``progress(stage, done, total)`` as batches come back.

    Raises:
        RemoteError: a worker failed (its error's first line).
    """
    import pyarrow as pa

    out = np.zeros((len(texts), dim), np.float32)
    if not texts:
        return out
    ray.data.DataContext.get_current().enable_progress_bars = False  # memos draws its own
    table = pa.table({"row": pa.array(np.arange(len(texts), dtype=np.int64)),
                      "text": pa.array(texts, pa.string())})
    # blocks made here, in the driver's memory: no read or repartition task needs a CPU that
    # the encoder actors hold
    size = max(1, -(-len(texts) // max(workers * 4, 1)))
    ds = ray.data.from_arrow([table.slice(n, size) for n in range(0, len(texts), size)])
    use_gpu = gpus(ray) > 0
    ds = ds.map_batches(_Encoder, fn_constructor_args=(model_dir,), batch_size=BATCH_ROWS,
                        batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1)
    done = 0
    try:
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            out[batch["row"]] = batch["vector"]
            done += len(batch["row"])
            if progress is not None:
                progress(stage, done, len(texts))
    except Exception as e:  # Ray wraps worker errors in its own types
        raise RemoteError(f"embedding on Ray failed: {str(e).strip().splitlines()[0][:300]}",
                          path="ray") from e
    if done != len(texts):
        raise RemoteError(f"embedding on Ray returned {done} of {len(texts)} vectors",
                          path="ray")
    return out


def ray_encoder(ray: Any, embedder: Any, workers: int | None,
                progress: Callable[[str, int, int], None] | None = None
                ) -> Callable[[list[str]], np.ndarray]:
    """The ``encode`` function that :func:`memos_cli.lifecycle.pack.pack` takes: embedding with
    ``embedder``'s model on the joined cluster ``ray``
    (:func:`memos_cli.batch.cluster.joined`), on ``workers`` actors (default: one per GPU of
    the cluster, else one per CPU)."""
    n = workers or (gpus(ray) or cpus(ray))
    return lambda texts: embed_on_ray(ray, str(embedder.dir), texts, embedder.dimension,
                                      workers=n, progress=progress)
