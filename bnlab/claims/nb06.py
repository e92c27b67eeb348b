"""Claims measured in notebook 06. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='higher-lr', notebook='06',
        statement='BN allows higher learning rates and makes training less sensitive to initialisation.',
        source='Ioffe & Szegedy 2015, §3.3',
        test='LR × init-scale grid with and without BN',
        explanation='learning-rate',
    ),
    Claim(
        id='gradient-explosion', notebook='06',
        statement='At initialisation BN *causes* gradient explosion in deep networks: ≈ √(π/(π−1)) growth per layer.',
        source='Yang et al. 2019',
        test='depth-30 ReLU MLP: per-layer gradient-norm growth 1.15-1.25 with BN, 0.95-1.05 without',
        explanation='start',
    ),
)
