"""Run under torchrun by tests/test_distributed.py (not a test module itself).

``python -m torch.distributed.run --nproc-per-node 2 tests/ddp_worker.py OUT_DIR`` makes every
rank write ``OUT_DIR/rank<r>.json`` with

- ``"fits"``: for each sampler, a digest of the model's and the sampler's weights after a short
  fit (every rank must hold the same ones: the gradients, sampler parameters included, were
  all-reduced) and the fit's world size;
- ``"inbatch_grad_error"``: the largest difference between the gradient of the in-batch loss over
  the global batch (each rank holding half of it, item side gathered) and the gradient computed
  on one process from the whole batch.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from recsampling.data.synthetic import make_world
from recsampling.models import make_model
from recsampling.samplers import Batch, make_sampler
from recsampling.train import Trainer

FITS = [("mf", "nbpo", {}), ("mf", "dla", {}), ("mf", "relmf", {}), ("mf", "ubpr", {}), ("mf", "dns", {}),
        ("twotower", "inbatch", {})]


def digest(*modules) -> str:
    h = hashlib.sha256()
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def inbatch_grad_error(train) -> float:
    """Global-batch in-batch gradient under DDP vs the same batch on one process."""
    from torch.nn.parallel import DistributedDataParallel

    from recsampling.train import _Objective

    rank, world = dist.get_rank(), dist.get_world_size()
    sampler = make_sampler("inbatch")
    sampler.prepare(train, np.random.default_rng(0))
    # every rank draws the same global batch, then keeps its slice of it
    batch = next(sampler.batches(64, np.random.default_rng(1))).to("cpu")
    n = len(batch) // world
    full_model = make_model("mf", train, factors=8, random_state=0)
    rows = slice(0, n * world)
    loss = sampler.loss(full_model, Batch(batch.users[rows], batch.items[rows]))
    loss.backward()
    want = full_model.user_factors.weight.grad.clone(), full_model.item_factors.weight.grad.clone()

    model = make_model("mf", train, factors=8, random_state=0)
    sampler.shard_ = (rank, world)
    rows = slice(rank * n, (rank + 1) * n)
    local = Batch(batch.users[rows], batch.items[rows])  # the global batch's items are gathered in the loss
    ddp = DistributedDataParallel(_Objective(model, sampler, 0.0))
    ddp(local).backward()
    got = model.user_factors.weight.grad, model.item_factors.weight.grad
    return max(float((g - w).abs().max()) for g, w in zip(got, want))


def main(out: Path) -> None:
    world = make_world(n_users=120, n_items=80, target_interactions=1500, random_state=0)
    train = world.clicks
    fits = {}
    for model_name, sampler_name, params in FITS:
        model = make_model(model_name, train, factors=8, random_state=0)
        sampler = make_sampler(sampler_name, **params)
        result = Trainer(epochs=2, batch_size=256, random_state=0, progress=False, n_threads=1).fit(model, sampler, train)
        fits[f"{model_name}+{sampler_name}"] = {"digest": digest(model, sampler), "world_size": result.world_size,
                                                "loss": result.losses[-1]}
    rank = dist.get_rank()
    err = inbatch_grad_error(train)
    (out / f"rank{rank}.json").write_text(json.dumps({"fits": fits, "inbatch_grad_error": err}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
