"""Would a user, with only the clicks, pick the same CET setting as the truth does? NDCG@10 on held-out clicks.

Question: ``benchmarks/cet_selection.py`` finds, with the synthetic world's truth, that holding
CET's selection model fixed (``sel_lr=1e-9``) gives a higher true NDCG@10 than learning it. A
user has no truth: does a validation split of the observed clicks say the same? The default
world's clicks (943 x 1682, 100k, ``random_state=0``) are split per user (10% held out,
:func:`recsampling.data.splits.validation_split`, seed 0); each variant fits MF (32 factors, Adam
lr 0.01, l2 1e-4, batch 1024, 10 epochs) on the rest and is scored by NDCG@10 on the held-out
clicks (training clicks excluded). One JSON line per fit.

    python benchmarks/cet_validation.py '{}' '{"sel_lr": 1e-9}' '{"sel_lr": 0.1}' '{"sampler": "tophard"}' \\
        > benchmarks/results/cet_validation.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", help='JSON sampler parameters per variant ("sampler" picks the sampler)')
    from recsampling.bench.flags import add_flags

    add_flags(p, "seeds", "threads")
    a = p.parse_args(argv)
    from recsampling.data import make_world
    from recsampling.data.splits import validation_split
    from recsampling.evaluation import evaluate
    from recsampling.models import make_model
    from recsampling.samplers import make_sampler
    from recsampling.train import Trainer

    logging.getLogger("recsampling.evaluation").setLevel(logging.ERROR)
    world = make_world(n_users=943, n_items=1682, target_interactions=100_000, n_logged_lists=0, random_state=0)
    sp = validation_split(world.clicks, fraction=0.1, random_state=0)
    for spec in a.variants:
        v = json.loads(spec)
        name = v.pop("sampler", "cet")
        for seed in range(a.seeds):
            m = make_model("mf", sp.train, factors=32, random_state=seed)
            Trainer(epochs=10, batch_size=1024, optimizer="adam", lr=0.01, l2=1e-4, progress=False,
                    random_state=seed, device="cpu", n_threads=a.threads).fit(m, make_sampler(name, **v), sp.train)
            r = evaluate(m, sp.test, train=sp.train, ks=(10,), metrics=("ndcg",), device="cpu").to_dict()
            print(json.dumps({"sampler": name, "params": v, "seed": seed, "valid_ndcg@10": r["ndcg@10"]}), flush=True)


if __name__ == "__main__":
    main()
