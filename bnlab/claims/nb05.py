"""Claims measured in notebook 05. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``); checks with ``asserted=False`` are findings
shown with ``bnlab.claims.show``.

Setting unless a check says otherwise: the 784-100-100-100-10 sigmoid MLP on Fashion-MNIST, init std
0.1, plain SGD, batch 60; landscape probes along the gradient every 25 steps, averaged over the 500
steps before each checkpoint; seeds 0-2 fixed the measurements, seeds 3-5 confirm them (full mode).
"""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='smoother-landscape', notebook='05',
        statement='BN makes the loss landscape smoother and the gradients more predictive.',
        source='Santurkar et al. 2018, §3, Fig. 4',
        test='relative gradient predictiveness and effective smoothness along the gradient, plain vs BN vs the '
             'well-scaled start (sigmoid MLP, lr 0.5 and 0.1); 8-layer ReLU MLP on its plateau; deep linear network',
        checks=(
            Check('rel-pred-lr0.5', 'lr 0.5: min plain / max BN relative gradient predictiveness, worst checkpoint',
                  '>=', 1.2),
            Check('lsuv-vs-bn-rel-pred-lr0.5', 'lr 0.5: well-scaled start / BN relative predictiveness, median',
                  '>', 1.2, asserted=False),
            Check('plain-vs-lsuv-rel-pred-lr0.5', 'lr 0.5: plain / well-scaled start relative predictiveness, median',
                  '>', 1.2, asserted=False),
            Check('rel-pred-lr0.1-first', 'lr 0.1: min plain / max BN relative predictiveness at the first checkpoint',
                  '>=', 1.2, asserted=False),
            Check('relu-plateau-rougher', '8-layer ReLU, lr 0.1, first 1,000 steps: min BN / max plain run mean, worst '
                  'of loss range, relative predictiveness and effective smoothness', '>=', 2.0),
            Check('relu-he-acc', '8-layer ReLU with He init, no BN: test accuracy at the end, worst seed', '>=', 0.75,
                  asserted=False),
            Check('dln-lr0.01-plain-diverges', 'deep linear network, lr 0.01: fraction of plain seeds that diverge',
                  '>=', 1.0),
            Check('dln-lr0.01-bn-survives', 'deep linear network, lr 0.01: fraction of BN seeds that stay finite',
                  '>=', 1.0),
            Check('dln-lr0.01-bn-stalls', "deep linear network: BN's final loss at lr 0.01 / BN's best at lr 0.001, "
                  "smallest over seeds", '>', 1.5, asserted=False),
            Check('dln-lr0.001-loss', 'deep linear network, lr 0.001: max BN / min plain final loss', '<=', 0.9),
        ),
        verdict='depends on the setting', explanation='smoothness',
        why="BN's gradient is more predictive at lr 0.5 and BN survives a learning rate that breaks the deep linear "
            "network, but at lr 0.1 it wins without being smoother and on the ReLU plateau the smoother net is the "
            "one that does not train.",
    ),
    Claim(
        id='lp-normalizers', notebook='05',
        statement='Normalizing with ℓp norms instead of per-unit standard deviations works as well as BN.',
        source='Santurkar et al. 2018, §3.3',
        test='ℓ1, ℓ2, ℓ∞ (centre each unit, one scale per layer) vs BN vs plain, sigmoid MLP, lr 0.1 '
             '(test accuracy, running averages)',
        checks=(
            Check('lp-vs-bn', 'largest |mean ℓp − mean BN| test accuracy over ℓ1, ℓ2, ℓ∞ and the checkpoints',
                  '<=', 0.03),
            Check('lp-lead-margin', 'worst ℓp seed − best plain seed − required lead (0.10, 0.05, 0.03 at 1k, 2k, '
                  '3k steps), worst case', '>=', 0.0),
        ),
        verdict='supported', explanation=None,
        why='ℓ1, ℓ2 and ℓ∞ normalization, which centre every unit and control one scale per layer, are well ahead of '
            'the plain net on every seed (0-5) and close to BN: per-unit variance control is not needed here. They '
            'still fix each unit\'s mean and the layer\'s scale, so this is no test of ICS, and their landscape was '
            'not measured, so it is no evidence on smoothness.',
    ),
    Claim(
        id='theorem-4.1', notebook='05',
        statement="BN's gradient with respect to a layer's pre-activations obeys Theorem 4.1's bound.",
        source='Santurkar et al. 2018, §4.1, Theorem 4.1 (printed with a 1/√m coefficient; 1/m in the proof)',
        test='‖∂L̂/∂y‖² against the 1/m bound per unit, every BN layer, recorded steps of the lr 0.5 runs',
        checks=(
            Check('bound-1-over-m', 'largest ‖∂L̂/∂y‖² / bound (1/m form)', '<=', 1.000001),
            Check('printed-form-violated', 'fraction of units violating the printed 1/√m form, smallest over seeds',
                  '>=', 0.99, asserted=False),
        ),
        verdict='illustration', explanation='smoothness',
        why='The bound holds with equality up to ε because our backward computes exactly this closed form, and the '
            'printed 1/√m form must fail for the same reason: both are algebra, not evidence.',
    ),
    Claim(
        id='theorem-4.1-reading', notebook='05',
        statement='By Theorem 4.1, BN makes the gradient smaller (σ_j > γ_j is the typical case).',
        source='Santurkar et al. 2018, §4.1',
        test='the gain γ²/σ² per unit of the deeper BN layers, lr 0.5',
        checks=(
            Check('gain-deeper-layers', 'median γ²/σ² of norm2 and norm3 (the smaller) at the last recorded step, '
                  'worst seed', '>', 1.0),
        ),
        verdict='depends on the setting', explanation='smoothness',
        why='At init std 0.1 the pre-BN activations of the deeper layers spread less than γ, so the gain γ²/σ² is '
            'above 1 and BN amplifies the gradient there; but the gain scales as 1/‖W‖² (multiplying W by 10 divides '
            'it by 100 without changing the function), so σ > γ fails at this weight scale, not in general.',
    ),
)
