"""Claims measured in notebook 03. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='faster-training', notebook='03',
        statement='BN trains the same network much faster.',
        source='Ioffe & Szegedy 2015, Fig. 1(a)',
        test='init std 0.01, lr 0.5, 1000 steps: BN ≥ 0.75 test accuracy, plain ≤ 0.35',
        explanation='start',
    ),
    Claim(
        id='stable-distributions', notebook='03',
        statement='With BN the input to a sigmoid keeps a stable distribution; without, it drifts.',
        source='Ioffe & Szegedy 2015, Fig. 1(b,c)',
        test='median sigmoid input drifts ≥ 3 units without BN, ≤ 1.5 with BN (over 10k+ steps)',
        explanation='ics',
    ),
)
