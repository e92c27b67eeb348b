"""Claims measured in notebook 01. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='algorithm', notebook='01',
        statement='BN normalizes each feature with batch statistics in training (γ and β can restore the '
                  'identity) and with fixed population statistics at inference.',
        source='Ioffe & Szegedy 2015, §3, Alg. 1-2',
        test='Algorithm 1 on real layer-2 inputs (60 × 100, float64); Algorithm 2 in eval mode; '
             'Monte Carlo of E[σ²_B] = (m−1)/m·σ²',
        checks=(
            Check('centred', 'largest |batch mean| of a unit after BN (γ=1, β=0)', '<', 1e-10),
            Check('unit-std', 'largest relative deviation of a unit\'s std after BN from √(σ²_B/(σ²_B+ε))',
                  '<', 1e-10),
            Check('identity', 'max |BN(x; γ=√(σ²_B+ε), β=μ_B) − x|', '<', 1e-10),
            Check('eval-batch-size', 'spread (max − min) of eval-mode test accuracy over test batch sizes 2–1000',
                  '<=', 0.0),
            Check('bessel', 'largest |E[σ²_B]/σ² − (m−1)/m| over m = 2…60 (Monte Carlo, mean over 100 units)',
                  '<', 0.02),
        ),
        verdict='illustration', explanation=None,
        why='Every check holds by construction (the algebra of Algorithms 1 and 2, and a theorem checked '
            'by sampling): a worked example of what BN computes, not evidence about why it helps.',
    ),
    Claim(
        id='matches-torch', notebook='01',
        statement="The course's NumPy Algorithms 1-2 and bnlab.layers.BatchNorm compute what "
                  "torch.nn.BatchNorm1d computes.",
        source='source text: notebook 01 (reference check against PyTorch)',
        test='same inputs and batches: train-mode output, running mean and variance, eval-mode output',
        checks=(
            Check('float64', 'largest relative error vs nn.BatchNorm1d (float64: Alg. 1, running mean and '
                  'variance after 300 batches, Alg. 2)', '<', 1e-10),
            Check('float32', 'max |bnlab.layers.BatchNorm − nn.BatchNorm1d| on the layer-2 batch (float32: '
                  'round-off of x divided by σ_B, up to ~1e-5 for units with little spread)', '<', 1e-4),
        ),
        verdict='supported', explanation=None,
        why='Our implementations agree with PyTorch to round-off in float64 and float32.',
    ),
    Claim(
        id='running-averages', notebook='01',
        statement="An EMA of batch statistics started at (0, 1) is biased for its first ~1/momentum steps, "
                  "which bias correction removes; afterwards it averages only the last ~1/momentum batches "
                  "and keeps a batch-noise floor that a cumulative average does not.",
        source='PyTorch BatchNorm1d (momentum 0.1, start 0 and 1); Kingma & Ba 2015, §3 (bias correction)',
        test='three estimators fed the same 300 mini-batches of 60 (six streams) from a frozen layer; '
             'error vs the population statistics',
        checks=(
            Check('bias-correction-start', 'worst stream: mean error of the running mean over steps 1–10, '
                  'bias-corrected EMA ÷ plain EMA', '<', 0.5),
            Check('ema-noise-floor', 'lowest stream: mean error of the running mean over the last 100 steps, '
                  'bias-corrected EMA (momentum 0.1) ÷ cumulative average', '>', 1.5),
            Check('ema-noise-floor-variance', 'lowest stream: error of the running variance over the last '
                  '100 steps, bias-corrected EMA ÷ cumulative average', '>', 1.5, asserted=False),
        ),
        verdict='supported', explanation=None,
        why='On all six streams bias correction cuts the early error by more than half, and over the last '
            '100 steps the EMA stays well above the cumulative average.',
    ),
    Claim(
        id='forgotten-eval', notebook='01',
        statement='Evaluating a BN network without model.eval() updates its running averages with test data, '
                  'even under torch.no_grad().',
        source='source text: notebook 01 (PyTorch train/eval semantics)',
        test='one train-mode forward pass of 1,000 test images under torch.no_grad(): buffers changed, '
             'eval-mode predictions changed',
        checks=(
            Check('buffers-changed', 'BN buffers changed by the pass (running mean, running variance and '
                  'batch counter of 3 layers)', 'near', 0.5, target=9),
            Check('predictions-changed', 'eval-mode test predictions (of 10,000) that changed, seed 0', '>', 0,
                  asserted=False),
        ),
        verdict='illustration', explanation=None,
        why='Train mode updates every running buffer by definition; the count and the changed predictions '
            'show the size of the damage, not a property of BN to be tested.',
    ),
    Claim(
        id='train-mode-batch', notebook='01',
        statement='In train mode a prediction depends on the other examples in the batch: small test '
                  'batches give noisy statistics and worse accuracy.',
        source='Ioffe & Szegedy 2015, §3.1 ("we want the output to depend only on the input, deterministically")',
        test='BN net, 1,000 steps: test accuracy in eval mode vs in train mode with test batches of 2',
        checks=(
            Check('batch-2-gap', 'lowest seed: eval-mode accuracy − train-mode accuracy with test batches of 2',
                  '>', 0.1),
        ),
        verdict='supported', explanation=None,
        why='On every seed train mode with batches of 2 loses more than 0.1 of test accuracy.',
    ),
    Claim(
        id='precise-bn', notebook='01',
        statement='At inference BN should use the population statistics of the trained network (Algorithm 2); '
                  "frameworks' running averages only approximate them and lag behind the weights.",
        source='Ioffe & Szegedy 2015, Alg. 2, step 10; Wu & Johnson 2021, §3 ("precise BN")',
        test='BN net after 1,000 steps at lr 0.5: eval-mode test accuracy with the EMA vs with statistics '
             'recomputed from the final weights (60,000 training images, batches of 60)',
        checks=(
            Check('matches-batch-1000', 'largest |accuracy with recomputed statistics (eval mode) − accuracy in '
                  'train mode with test batches of 1,000| over seeds', '<', 0.005),
            Check('gain', 'lowest seed: test accuracy with recomputed statistics − with the EMA (eval mode)',
                  '>', 0.0, asserted=False),
        ),
        verdict='supported', explanation=None,
        why='Recomputed statistics reproduce what the final weights\' batch statistics give (asserted), while '
            'the EMA differs; in the full run (1,000 steps) recomputing raised accuracy on all six seeds '
            '(shown, not asserted: after the 300 steps of the quick run one seed of three went the other way).',
    ),
)
