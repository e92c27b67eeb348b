"""Claims measured in notebook 02. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='backward', notebook='02',
        statement="The gradient through BN follows the paper's backward equations and is orthogonal to shifts and rescalings of the batch.",
        source='Ioffe & Szegedy 2015, §3',
        test='staged and closed-form backward vs finite differences and autograd: rel. error < 1e-8 (float64)',
        explanation=None,
    ),
    Claim(
        id='scale-invariance', notebook='02',
        statement='BN((aW)u) = BN(Wu): larger weights get proportionally smaller gradients.',
        source='Ioffe & Szegedy 2015, §3.3',
        test='∂/∂(aW) = (1/a)·∂/∂W numerically for several a',
        explanation=None,
    ),
)
