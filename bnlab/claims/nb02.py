"""Claims measured in notebook 02. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='backward', notebook='02',
        statement="The gradient through BN is given by the paper's backward equations (three paths from x: "
                  "direct, through μ_B and through σ²_B).",
        source='Ioffe & Szegedy 2015, §3',
        test='staged (node by node) and simplified backward on a real batch (60 × 100, float64, real upstream '
             'gradient) vs autograd, nn.BatchNorm1d and finite differences; Linear → BN',
        checks=(
            Check('nodes', 'largest relative error of any node gradient of the staged backward vs autograd '
                  '(retain_grad on the same graph)', '<', 1e-8),
            Check('autograd', 'largest relative error of dx, dγ, dβ vs autograd of the formula and '
                  'nn.BatchNorm1d (both backward passes)', '<', 1e-8),
            Check('fd-five-point', 'largest relative error vs five-point differences (h = 1e-3)', '<', 1e-7),
            Check('fd-two-point', 'largest relative error vs two-point differences (h = 1e-5)', '<', 1e-5),
            Check('linear-then-bn', 'largest relative error of ∂ℓ/∂u and ∂ℓ/∂W of Linear → BN vs five-point '
                  'differences and autograd', '<', 1e-7),
        ),
        verdict='supported', explanation=None,
        why='Both implementations of the equations agree with autograd to round-off and with finite '
            'differences to the differences\' own accuracy, node by node and through a Linear layer.',
    ),
    Claim(
        id='ones-upstream', notebook='02',
        statement='A gradient check of BN with an all-ones upstream gradient cannot catch a wrong ∂ℓ/∂x: '
                  'Σᵢ yᵢ = mβ does not depend on x.',
        source='source text: notebook 02 (how homework gradient checks are set up)',
        test='a backward that forgets the path through σ²_B, checked with all-ones and with the real upstream '
             'gradient (five-point differences)',
        checks=(
            Check('buggy-passes-ones', 'its largest dx error with all-ones upstream, ÷ largest true |dx| (it '
                  'would pass the homework checkers\' tolerance)', '<', 1e-6),
            Check('buggy-fails-real-g', 'its largest dx error with the real upstream gradient, ÷ largest true '
                  '|dx|', '>', 0.01),
        ),
        verdict='illustration', explanation=None,
        why='With ones upstream the true ∂ℓ/∂x is zero and so is the buggy one, by the algebra; the real '
            'gradient exposes the bug.',
    ),
    Claim(
        id='projection', notebook='02',
        statement='The gradient reaching x has its components along 1 and along x̂ removed: BN is blind to '
                  'shifts and rescalings of its input.',
        source='Ioffe & Szegedy 2015, §3 (equations); source text: notebook 02 (projection reading)',
        test='Σᵢ ∂ℓ/∂xᵢ and Σᵢ ∂ℓ/∂xᵢ·x̂ᵢ on the real batch; share of ‖g‖² removed vs random-sign and '
             'untrained baselines',
        checks=(
            Check('sum-zero', 'largest |Σᵢ ∂ℓ/∂xᵢ| ÷ Σᵢ |∂ℓ/∂xᵢ| over the 100 units', '<', 1e-12),
            Check('xhat-eps-term', 'largest |Σᵢ ∂ℓ/∂xᵢ·x̂ᵢ − the ε term| ÷ the largest Σᵢ |∂ℓ/∂xᵢ|', '<', 1e-12),
            Check('removed-vs-random-signs', 'median share of ‖g‖² removed, trained net ÷ the same g with '
                  'random signs', '<', 1.0, asserted=False),
        ),
        verdict='illustration', explanation=None,
        why='Both identities follow from the algebra of the backward pass; how much the projection removes '
            'is shown against baselines, not asserted.',
    ),
    Claim(
        id='scale-invariance', notebook='02',
        statement='BN((aW)u) = BN(Wu) for a > 0: larger weights get proportionally smaller gradients, '
                  'orthogonal to the weights.',
        source='Ioffe & Szegedy 2015, §3.3',
        test='layer 2 of the trained net with W scaled by a = 0.1…100 (ε = 0 and 1e-5)',
        checks=(
            Check('exact-eps0', 'largest relative difference of output, ∂/∂u and a·∂/∂(aW) from a = 1 (ε = 0)',
                  '<', 1e-10),
            Check('inverse-a', 'largest |a·‖∂ℓ/∂(aW)‖ ÷ ‖∂ℓ/∂W‖ − 1| for a ≥ 1 (ε = 1e-5)', '<', 1e-3),
            Check('orthogonal', 'largest |cos(W_j, ∂ℓ/∂W_j)| over the BN units (ε = 0)', '<', 1e-8),
        ),
        verdict='illustration', explanation=None,
        why='Degree-0 homogeneity gives all three identities by the chain rule; the checks show them on a '
            'real layer.',
    ),
    Claim(
        id='bias-before-bn', notebook='02',
        statement="A bias before BN is redundant: its effect is cancelled by the mean subtraction.",
        source='Ioffe & Szegedy 2015, §3.2',
        test='Linear(100, 100) with bias → BN, real upstream gradient: bias gradient vs weight gradient',
        checks=(
            Check('zero-gradient', 'largest |∂ℓ/∂bias| ÷ largest |∂ℓ/∂W|', '<', 1e-12),
        ),
        verdict='illustration', explanation=None,
        why='Σᵢ ∂ℓ/∂xᵢ = 0 makes the bias gradient zero by the algebra.',
    ),
)
