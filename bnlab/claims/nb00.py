"""Claims measured in notebook 00. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='small-init-plateau', notebook='00',
        statement='Without BN, the sigmoid MLP started from small weights sits on a plateau for hundreds of '
                  'steps; started at the default scale it learns at once.',
        source="source text: notebook 00 (the setting of Ioffe & Szegedy 2015, §4.1 and Fig. 1, without BN)",
        test='plain 784-100-100-100-10 sigmoid MLP, SGD lr 0.5, batch 60, test accuracy after 1,000 steps',
        checks=(
            Check('default-init-learns', 'lowest seed, test accuracy after 1,000 steps, default init', '>=', 0.5),
            Check('small-init-stuck', 'highest seed, test accuracy after 1,000 steps, init std 0.01', '<=', 0.35),
        ),
        verdict='supported', explanation='start',
        why='On every seed (0–2, confirmed on 3–5) the default-initialised net is above 0.5 after 1,000 steps '
            'and the init-std-0.01 net still below 0.35, with first-layer gradients 180× smaller at init.',
    ),
)
