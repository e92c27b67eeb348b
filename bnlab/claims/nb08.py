"""Claims measured in notebook 08. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='design', notebook='08',
        statement='Where BN goes and whether it has γ, β matters less than folklore says.',
        source='Ioffe & Szegedy 2015; Goodfellow et al. 2016; Mishkin et al. 2017',
        test='before/after the nonlinearity, affine or not, bias, effective learning rate η/‖w‖²',
        explanation=None,
    ),
)
