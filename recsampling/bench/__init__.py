"""The benchmark layer: what every script under ``benchmarks/`` and the suite share.

- :mod:`~recsampling.bench.contenders`: the contenders behind one fit interface (ours from the
  registries, ``implicit``'s ALS / BPR / item-kNN, popularity), the peers' search spaces and the
  speed pairs' settings;
- :mod:`~recsampling.bench.store`: the cell store (one JSON file per finished fit, resumable);
- :mod:`~recsampling.bench.report`: mean +- standard error over seeds, the tidy table, Markdown;
- :mod:`~recsampling.bench.plots`: the suite's PNGs;
- :mod:`~recsampling.bench.flags`: the scripts' shared flags, result paths and files, JSON-last-line output;
- :mod:`~recsampling.bench.measure`: the speed scripts' repeat timer, epoch rate, memory readers, load
  and machine;
- :mod:`~recsampling.bench.speed`: the speed scripts' data (ML-1M pairs or their synthetic stand-in,
  the scoring problem, the scaled ML-20M worlds), implicit's top-k, the scale benchmark's steps;
- :mod:`~recsampling.bench.mnar`: the randomized-test tasks and figures of the MNAR benchmarks;
- :mod:`~recsampling.bench.saito`: the authors' protocol of Saito's code (its training loops and
  tuned values in :mod:`recsampling.samplers.saito`);
- :mod:`~recsampling.bench.dla`: the DLA benchmark's biased logs and eq. (7) diagnostics;
- :mod:`~recsampling.bench.negatives`: the false-negative benchmarks' worlds and monitored fit.
- :mod:`~recsampling.bench.noise`: the label-noise benchmark's task (hidden true positives) and its
  flip-ranking figures (the authors' NBPO loops in :mod:`recsampling.samplers.nbpo_authors`).

A script under ``benchmarks/`` keeps only its own question (STYLE.md rule 17); loading a task is
:func:`recsampling.tasks.load_task`'s, the grid and its orchestration :mod:`recsampling.suite`'s.
"""
