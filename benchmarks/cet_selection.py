"""Does CET's selection model learn what it should? Its P(truly negative) of drawn negatives against the world's truth.

Question: ``cet`` weights each drawn negative by eq. (2) of :mod:`recsampling.samplers.cet`,
``w = (1 − γ) / (1 − θγ)``, its estimate that the negative is truly negative, with ``θ`` a
learned selection (exposure) model and ``γ = σ(score)``. How well does ``w`` rank the drawn
negatives by the truth, against the score alone and against eq. (2) with the world's own
``θ`` and relevance (the oracle)? And does a better estimate give a better ranker?

The truth of an unobserved pair is the world's ``P(liked | not clicked)`` =
``rel (1 − exposure) / (1 − rel · exposure)`` (``recsampling/data/synthetic.py``); a drawn
negative is labelled "truly negative" by one Bernoulli draw from it (a fixed generator), and
the AUCs are of that label. Per fit (MF, 32 factors, Adam lr 0.01, l2 1e-4, batch 1024, 10
epochs, as ``false_negatives.py``), after the last epoch, on 20k rows of the sampler's draws:

- ``auc_w``: AUC of ``w``; ``auc_score``: AUC of ``−score`` (what the ranker alone knows);
  ``auc_oracle``: AUC of eq. (2) with the world's exposure and relevance;
  ``auc_theta_true_rel``: eq. (2) with the learned ``θ`` and the world's relevance;
- ``theta_exposure_spearman``: rank correlation of the learned ``θ`` with the true exposure;
- ``sel_nll``: eq. (3) (the selection model's training loss; what a user can see);
- ``mean_w``, ``false_negative_rate`` (``recsampling.diagnostics``), ``true_ndcg@10``.

Variants are JSON objects of sampler parameters (``{"sel_lr": 1e-9}`` holds θ at its initial
1/2), with two ablation keys that patch the sampler in this script only: ``"init"`` (the item
selection logits' initial value) and ``"floor"`` (a lower bound on ``w``); ``"sampler"`` picks
another sampler (no AUCs then).

    python benchmarks/cet_selection.py --world quick --variants '[{}, {"sel_lr": 1e-9}, {"sel_lr": 0.1}]'
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch

from recsampling._utils import to_jsonable
from recsampling.bench.flags import add_flags, command_line, result_path, write_results
from recsampling.bench.negatives import WORLDS, monitored_fit
from recsampling.bench.report import mean_and_se
from recsampling.metrics import pooled_auc


def _patched(name: str, init, floor):
    """The sampler class, with the ``init`` / ``floor`` ablations patched into a subclass."""
    from recsampling.samplers.base import SAMPLERS

    base = SAMPLERS.lookup(name)
    if init is None and floor is None:
        return base

    class Ablated(base):
        def prepare(self, train, rng):
            super().prepare(train, rng)
            if init is not None:
                with torch.no_grad():
                    self.selection_.item_logit.fill_(float(init))

        def _weights(self, s, batch):
            t, w = super()._weights(s, batch)
            return (t, w) if floor is None else (t, w.clamp(min=float(floor)))

    return Ablated


def measure(variant: dict, seed: int, world, rows: int = 20_000, threads: int = 1) -> dict:
    """One fit of ``variant`` and its measurements (see the module docstring)."""
    from scipy.stats import spearmanr

    v = dict(variant)
    name = v.pop("sampler", "cet")
    cls = _patched(name, v.pop("init", None), v.pop("floor", None))
    fit = monitored_fit(cls(**v), world, seed=seed, epochs=10, rows=rows, threads=threads)
    s, m, last = fit.sampler, fit.model, fit.history[-1]
    out = {"variant": variant, "seed": seed, "time_s": fit.seconds,
           "false_negative_rate": last["false_negative_rate"], "true_ndcg@10": last["true_ndcg@10"]}
    if name != "cet":
        return out
    from recsampling.samplers.cet import _log1mexp

    rng = np.random.default_rng(123)
    s.eval()
    m.eval()
    U, I, W, S, T = [], [], [], [], []
    nll_sum = nll_n = 0.0
    drawn = 0
    for b in s.batches(1024, rng):
        bt = b.to("cpu")
        with torch.no_grad():
            sc = m.score(bt.users, bt.items)
            t = s.selection_(bt.users, bt.items)
            w = s.negative_weights(m, bt)
            lt = torch.nn.functional.logsigmoid(t) + torch.nn.functional.logsigmoid(sc)
            nll = torch.cat([-lt[:, :1], -_log1mexp(lt[:, 1:])], dim=1).numpy()
        real = np.ones(b.items.shape, bool) if b.mask is None else np.asarray(b.mask)
        nll_sum += float((nll * real).sum())
        nll_n += float(real.sum())
        for c in range(1, b.items.shape[1]):
            k = real[:, c]
            U.append(b.users[k]), I.append(b.items[k, c]), W.append(w[k, c].numpy())
            S.append(sc[k, c].numpy()), T.append(t[k, c].numpy())
        drawn += len(b)
        if drawn >= rows:
            break
    U, I, W, S, T = map(np.concatenate, (U, I, W, S, T))
    rel, expo = world.relevance[U, I], world.exposure[U, I]
    liked = rel * (1 - expo) / (1 - rel * expo)  # the world's P(liked | not clicked)
    negative = rng.random(rel.size) >= liked
    theta = 1.0 / (1.0 + np.exp(-T))
    out.update(auc_w=pooled_auc(W, negative), auc_score=pooled_auc(-S, negative),
               auc_oracle=pooled_auc((1 - rel) / (1 - expo * rel), negative),
               auc_theta_true_rel=pooled_auc((1 - rel) / (1 - theta * rel), negative),
               theta_exposure_spearman=float(spearmanr(T, expo)[0]), sel_nll=nll_sum / nll_n,
               mean_w=float(W.mean()), liked_share_weighted=float((W * liked).sum() / W.sum()))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", choices=sorted(WORLDS), default="quick")
    p.add_argument("--variants", default='[{}, {"sel_lr": 1e-9}, {"sel_lr": 0.1}]', help="JSON list of variants")
    add_flags(p, "seeds", "threads", "json")
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/cet_selection_<users>x<items>.json)")
    a = p.parse_args(argv)
    from recsampling.data import make_world

    logging.getLogger("recsampling.evaluation").setLevel(logging.ERROR)
    variants = json.loads(a.variants)
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        p.error(f"--variants must be a JSON list of objects, got {a.variants!r}")
    world = make_world(**WORLDS[a.world], n_logged_lists=0, random_state=0)
    runs = [measure(v, seed, world, threads=a.threads) for v in variants for seed in range(a.seeds)]
    summary = []
    for v in variants:
        rs = [{k: x for k, x in r.items() if k not in ("variant", "seed")} for r in runs if r["variant"] == v]
        row = {"variant": v, **mean_and_se(rs)}
        summary.append(row)
        print(json.dumps({k: (x if k == "variant" else round(x["mean"], 4)) for k, x in row.items()}))
    out = {"world": WORLDS[a.world], "seeds": list(range(a.seeds)), "summary": summary, "runs": runs,
           "command": command_line(__file__, argv)}
    shape = f"{WORLDS[a.world]['n_users']}x{WORLDS[a.world]['n_items']}"
    write_results(result_path(__file__, "cet_selection", shape, out=a.out), to_jsonable(out))
    if a.json:
        print(json.dumps(to_jsonable(out)))
    return out


if __name__ == "__main__":
    main()
