"""Fused CPU kernels (numba) for the hot training loops that plain torch makes slow.

``mf_bpr_epoch`` trains a matrix factorization model for one BPR epoch in place with a hogwild
numba kernel; the samplers' ``fused_epoch`` and the Trainer's ``backend="auto"`` use it for
MF + BPR + SGD on CPU.
"""

from recsampling.fast.bpr import alias_table, bpr_sgd_epoch, draw_negatives, mf_bpr_epoch, popularity_weights

__all__ = ["alias_table", "bpr_sgd_epoch", "draw_negatives", "mf_bpr_epoch", "popularity_weights"]
