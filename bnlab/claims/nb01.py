"""Claims measured in notebook 01. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='algorithm', notebook='01',
        statement='BN normalizes each feature with batch statistics in training and running (population) statistics at inference.',
        source='Ioffe & Szegedy 2015, Alg. 1-2',
        test='NumPy forward and our torch layer equal torch.nn.BatchNorm1d/2d to 1e-5 (float32)',
        explanation=None,
    ),
)
