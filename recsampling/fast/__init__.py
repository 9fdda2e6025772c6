"""Fused CPU kernels (numba) for the training loops that plain torch makes slow.

:func:`find_kernel` is the one place that picks a backend: a lookup from (model kind, sampler,
optimizer, device) to a kernel (:mod:`recsampling.fast.backends`); the Trainer's
``backend="auto"`` takes a hit and otherwise runs the torch autograd loop, the reference every
kernel is tested against. :mod:`recsampling.fast.mf` is the matrix factorization kernel for every
per-pair sampler; :mod:`recsampling.fast.draws` holds the random draws they share.
"""

from recsampling.fast.backends import FusedEpochs, find_kernel, kernel_keys, model_kind, register_kernel
from recsampling.fast.draws import alias_table, draw_negatives

__all__ = ["FusedEpochs", "alias_table", "draw_negatives", "find_kernel", "kernel_keys", "model_kind",
           "register_kernel"]
