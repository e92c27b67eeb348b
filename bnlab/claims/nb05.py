"""Claims measured in notebook 05. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='smoother-landscape', notebook='05',
        statement='BN makes the loss landscape smoother and the gradients more predictive.',
        source='Santurkar et al. 2018, §3, Fig. 4',
        test='relative gradient predictiveness lower with BN at lr 0.5 (ratio ≥ 1.2); ℓp norms train like BN',
        explanation='smoothness',
    ),
)
