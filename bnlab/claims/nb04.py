"""Claims measured in notebook 04. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='ics-not-needed', notebook='04',
        statement='BN still helps when we inject distribution shift after it (noisy BN): stable distributions are not what makes it work.',
        source='Santurkar et al. 2018, §2.1',
        test='noisy BN trains like BN (within 0.01) and far ahead of plain early on, lr 0.1',
        explanation='ics',
    ),
    Claim(
        id='ics-not-reduced', notebook='04',
        statement="BN does not reduce internal covariate shift measured as the change of a layer's gradient after the layers below update.",
        source='Santurkar et al. 2018, §2.2, Def. 2.1',
        test='‖G−G′‖ and cos(G,G′) per layer, MLP and deep linear network',
        explanation='ics',
    ),
)
