"""The benchmark suite: models x samplers x datasets x seeds, plus implicit's BPR and ALS.

    python benchmarks/run.py --quick --out DIR            # smoke run (< 3 min), what CI runs
    python benchmarks/run.py --out benchmarks/results/suite --data-dir ../shared/data
    python benchmarks/run.py --tuned sqlite:///runs/tuning/studies.db --out DIR

Writes DIR/results.csv (one row per run), DIR/results.md (mean ± s.e. per method, best in bold)
and PNGs; a second run with the same --out reuses the finished cells. With --json the last
stdout line is one JSON object (cells run / reused / failed, files, per-method means). The
engine is recsampling.suite (also `recsampling bench`).
"""

import sys

from recsampling.suite import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="benchmarks/run.py"))
