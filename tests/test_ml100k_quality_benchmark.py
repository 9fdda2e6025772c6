"""benchmarks/ml100k_quality.py: the BLAS thread count implicit asks for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ml100k_quality.py"


def test_blas_is_single_threaded_after_the_scripts_imports():
    # implicit wants a one-thread BLAS; OpenBLAS reads OPENBLAS_NUM_THREADS only when numpy loads it,
    # so the script must set it before anything (importing recsampling included) loads numpy
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('ml100k_quality', {str(SCRIPT)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "1"
