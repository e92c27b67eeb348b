"""Claims measured in notebook 07. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='regularizer', notebook='07',
        statement='BN regularizes through the noise of batch statistics; small batches break it.',
        source='Ioffe & Szegedy 2015, §3.4; Wu & He 2018',
        test='noise vs batch size; dropout variance shift Var_train/Var_test = 1/p within 2%',
        explanation='regularization',
    ),
)
