"""Claims measured in notebook 08. Each check's condition is asserted by the notebook through
``bnlab.claims.check`` (see ``bnlab.claims.core``)."""
from __future__ import annotations

from bnlab.claims.core import Check, Claim

__all__ = ["CLAIMS", "Check"]

_ACC = "test accuracy, eval mode (running statistics)"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id='bn-after-activation', notebook='08',
        statement='BN works better after the nonlinearity than before it (after ReLU: 0.499 vs 0.474 on '
                  'CaffeNet/ImageNet).',
        source='Mishkin, Sergievskiy & Matas 2017 (Systematic evaluation of CNN advances on the ImageNet), BN table',
        test='784-100-100-100-10 BN MLP, sigmoid and ReLU, BN before vs after the activation, paired by seed, '
             'lr 0.1 and 0.5, 3,000 steps; ReLU at lr 0.5 also 10,000 steps',
        checks=(
            Check('sigmoid-after-minus-before', f'smallest paired (after − before) over seeds, sigmoid, lr 0.1, '
                  f'3,000 steps, {_ACC}', '>', 0.008, asserted=False),
            Check('sigmoid-after-minus-before-lr05', f'smallest paired (after − before) over seeds, sigmoid, lr 0.5, '
                  f'3,000 steps, {_ACC}', '>', 0.008, asserted=False),
            Check('relu-after-minus-before', f'|mean paired (after − before)| over seeds, ReLU, lr 0.1, 3,000 steps, '
                  f'{_ACC}', '<', 0.01),
            Check('relu-after-minus-before-lr05', f'mean paired (after − before) over seeds, ReLU, lr 0.5, '
                  f'3,000 steps, {_ACC}', '<', 0.0, asserted=False),
            Check('relu-after-minus-before-lr05-10k', f'mean paired (after − before) over seeds, ReLU, lr 0.5, '
                  f'10,000 steps, {_ACC}', '<', 0.0, asserted=False),
        ),
        verdict='depends on the setting', explanation=None,
        why='BN after the sigmoid is ahead on every seed (paired mean ± SE +0.010 ± 0.003 at lr 0.1, two of six '
            'seeds within resolution; +0.024 ± 0.006 at lr 0.5), but for ReLU, the case Mishkin measured, after − before is −0.003 ± 0.004 (lr 0.1) and '
            '−0.011 ± 0.005 (lr 0.5), and at lr 0.5 after 10,000 steps −0.016 ± 0.003 (−0.011 ± 0.001 averaged over '
            '6,000–10,000 steps, every seed negative, with a higher training loss): his gain does not carry over '
            'to this MLP.',
    ),
    Claim(
        id='gamma-beta', notebook='08',
        statement='γ and β keep BN from limiting what a layer can represent (a sigmoid fed unit-variance inputs '
                  'stays near its linear regime), and they are easy to learn: the mean and scale of a unit are '
                  'set by β and γ alone; yet removing them is better after ReLU (Mishkin: 0.499 without, 0.493 with).',
        source='Ioffe & Szegedy 2015, §3; Goodfellow, Bengio & Courville 2016, §8.7.1; Mishkin, Sergievskiy & '
               'Matas 2017, BN table',
        test='same BN MLPs with and without γ, β (affine=False), paired by seed, lr 0.5, 3,000 steps: BN before '
             'the sigmoid and BN after ReLU (Mishkin\'s placement)',
        checks=(
            Check('relu-after-affine-effect-lr05', f'mean paired (with γ,β − without) over seeds, BN after ReLU, '
                  f'lr 0.5, 3,000 steps, {_ACC}', 'between', (-0.01, 0.01), asserted=False),
            Check('sigmoid-before-affine-effect-lr05', f'mean paired (with γ,β − without), BN before sigmoid, '
                  f'lr 0.5, 3,000 steps, {_ACC}', '>', 0.0, asserted=False),
        ),
        verdict='depends on the setting', explanation=None,
        why='At lr 0.5, γ, β are worth +0.012 ± 0.003 before a sigmoid (every seed), where they extend what the '
            'net can represent; after ReLU, where the next Linear layer absorbs them (a pure test of learning '
            'dynamics), +0.009 ± 0.005 (−0.006 to +0.020) is not resolved and leans towards γ, β helping, the '
            'opposite sign to Mishkin\'s: neither "better without" nor a uniform size of their benefit holds.',
    ),
    Claim(
        id='bn-only-training', notebook='08',
        statement='With every weight frozen at its random init, training only BN\'s γ and β reaches high accuracy, '
                  'far above training an equal number of randomly chosen weights; BN learns to switch off '
                  'about a third of the random features.',
        source='Frankle, Schwab & Morcos 2021 (Training BatchNorm and Only BatchNorm), abstract',
        test='6 × 256 ReLU BN MLP, 1,200 steps: train only γ, β vs a random subset of as many weights (uniform, '
             'and two incoming weights per hidden unit), all at lr 1.0; vs only the output layer and everything, '
             'at lr 0.5',
        checks=(
            Check('gamma-beta-minus-random', f'smallest paired (γ,β only − random subset) over seeds, lr 1.0, '
                  f'1,200 steps, {_ACC}', '>', 0.0, asserted=False),
            Check('gamma-beta-minus-random-heldout', f'mean paired (γ,β only − random subset) over the held-out '
                  f'seeds 6–8, lr 1.0, 1,200 steps, {_ACC}', '<', 0.0, asserted=False),
            Check('gamma-beta-minus-random-per-unit', f'mean paired (γ,β only − two random incoming weights per '
                  f'hidden unit) over seeds, lr 1.0, 1,200 steps, {_ACC}', '<', 0.01),
            Check('gamma-beta-minus-all', f'mean paired (γ,β only at lr 1.0 − everything at lr 0.5) over seeds, '
                  f'1,200 steps, {_ACC}', '<', -0.02,
                  asserted=False),
            Check('switched-off-fraction', 'fraction of hidden units switched off by γ, β (P(γ x̂ + β > 0) < 1 % '
                  'for x̂ ~ N(0, 1)), γ, β only at lr 1.0, mean over seeds (the paper: about a third)', '>', 0.25,
                  asserted=False),
        ),
        verdict='not seen here', explanation=None,
        why='In a 6 × 256 MLP after 1.2 epochs (the paper: deep ResNets, many epochs), γ, β alone reach 0.79 '
            '(output layer alone 0.69, everything 0.84), but as many random weights do about as well: '
            'γ,β − uniform random −0.006 ± 0.002 (held-out seeds 6–8: −0.012 ± 0.003), γ,β − two random weights '
            'per unit +0.006 ± 0.001 (pre-registered < 0.01; ahead on five of six seeds); only 3–5 % of units are switched off, not a third.',
    ),
    Claim(
        id='bias-gradient-algebra', notebook='08',
        statement='The bias of a layer followed by BN gets a zero gradient in training mode, so it never moves '
                  '(Σᵢ ∂ℓ/∂xᵢ = 0 through BN).',
        source='Ioffe & Szegedy 2015, §3.2; the backward equations of notebook 02',
        test='BN-before-ReLU MLP with a bias kept in every hidden Linear, lr 0.1, 1,000 steps: bias gradient '
             'and movement (float32)',
        checks=(
            Check('bias-gradient-ratio', 'largest ‖∂L/∂b‖ / ‖∂L/∂W‖ over hidden layers and the probed steps, '
                  'train mode', '<', 1e-5),
            Check('bias-movement', 'largest |b_T − b_0| over hidden biases after the run (lr 0.1)', '<', 1e-5),
        ),
        verdict='illustration', explanation=None,
        why='Both hold by construction (the gradient is zero in exact arithmetic): they check the algebra and '
            'show float32 round-off of about 4·10⁻⁸.',
    ),
    Claim(
        id='bias-redundant', notebook='08',
        statement='The bias of a layer followed by BN can be ignored: its effect is cancelled by the mean '
                  'subtraction (β takes its role).',
        source='Ioffe & Szegedy 2015, §3.2',
        test='BN-before-ReLU MLP, lr 0.1, 1,000 steps: accuracy with vs without the hidden biases, same '
             'initial weights and batches, in float32 and in float64',
        checks=(
            Check('accuracy-with-minus-without', f'largest |paired (with bias − without)| over seeds, float32, '
                  f'{_ACC}', '<', 0.01, asserted=False),
            Check('accuracy-with-minus-without-float64', f'largest |paired (with bias − without)| over seeds, '
                  f'float64, {_ACC}', '<', 0.001),
        ),
        verdict='illustration', explanation=None,
        why='Holds by construction (in exact arithmetic the nets with and without the bias compute the same '
            'function, in training and, through the running mean, in eval mode). In float64 the twins with and without the bias stay within 2·10⁻¹⁵ of each other and reach identical '
            'test accuracy on all six seeds; the float32 differences (0 to +0.010) are round-off amplified along '
            'the trajectory (the twins\' weights part from 2·10⁻⁷ to 0.1–0.2 on five seeds).',
    ),
    Claim(
        id='beta-overfits', notebook='08',
        statement='BN\'s shift β can add overfitting.',
        source='source text (course reading on BN design choices)',
        test='BN-before-ReLU MLP, lr 0.1, 3,000 steps: train − test accuracy gap with β trained vs β frozen at 0',
        checks=(
            Check('gap-with-minus-without-beta', 'mean paired (gap with β − gap with β frozen at 0) over seeds, '
                  'gap = train − test accuracy (10k train subset), eval mode', '<', 0.01, asserted=False),
        ),
        verdict='not seen here', explanation=None,
        why='Freezing β at 0 changes the train − test gap by −0.002 to +0.001 per seed (mean −0.0006 ± 0.0004): no '
            'overfitting from β in this MLP after 3,000 steps, in a regime that barely overfits (train − test gap '
            'about 0.025), which cannot rule out a "can" claim for other models; '
            'β is not batch noise, so this bears on no explanation.',
    ),
    Claim(
        id='bn-affine-per-unit', notebook='08',
        statement='BN is an affine map per unit, so it cannot change the shape (excess kurtosis) of any unit\'s '
                  'distribution.',
        source='the algebra of Ioffe & Szegedy 2015, Alg. 1 (κ(ax + c) = κ(x) for a ≠ 0)',
        test='784-100-100-100-10 BN-before-ReLU MLP, lr 0.1, 3,000 steps: excess kurtosis of each layer-1 unit '
             'before and after BN on 1,000 test images',
        checks=(
            Check('per-unit-kurtosis-unchanged', 'largest |excess kurtosis after BN − before BN| over layer-1 '
                  'units and seeds (BN is affine per unit), train mode, 1,000 test images', '<', 1e-3),
        ),
        verdict='illustration', explanation=None,
        why='Holds by construction: the check confirms the algebra (round-off ≤ 3·10⁻⁷).',
    ),
    Claim(
        id='gelu-gaussian', notebook='08',
        statement='Neuron inputs tend to follow a normal distribution, especially with BN, which motivates GELU '
                  '(x Φ(x)).',
        source='Hendrycks & Gimpel 2016, §2',
        test='784-100-100-100-10 MLP, lr 0.1, 3,000 steps: per-unit and pooled excess kurtosis of the '
             'pre-activations with and without BN; ReLU vs GELU accuracy',
        checks=(
            Check('pooled-kurtosis-plain-minus-bn', 'smallest (plain − BN) pooled excess kurtosis of the layer-1 '
                  'pre-activations over seeds, trained nets, train mode, 1,000 test images', '>', 0.25),
            Check('pooled-kurtosis-lsuv-minus-bn', 'smallest (well-scaled start − BN) pooled excess kurtosis of the '
                  'layer-1 pre-activations over seeds, trained nets, train mode, 1,000 test images', '>', 0.25,
                  asserted=False),
            Check('gelu-minus-relu-bn', f'|mean paired (GELU − ReLU)| with BN over seeds, 3,000 steps, {_ACC}',
                  '<', 0.01),
        ),
        verdict='mixed', explanation=None,
        why='Units are near-Gaussian with or without BN (BN, affine per unit, cannot change their kurtosis); '
            'BN makes the pooled layer histogram Gaussian (plain − BN 1.98 ± 0.14, ≥ 1.23 on seeds 0–8), but a '
            'well-scaled start does most of that (well-scaled start − BN 0.58 ± 0.09); GELU ≈ ReLU with BN '
            '(+0.0015 ± 0.0029).',
    ),
    Claim(
        id='scale-invariance-numeric', notebook='08',
        statement='For weights feeding BN, L(cW) = L(W) and ∇L(cW) = ∇L(W)/c; so ∇L is orthogonal to W, and plain SGD '
                  '(no momentum, no weight decay) can only grow ‖W‖.',
        source='Ioffe & Szegedy 2015, §3.3',
        test='784-100-100-100-10 BN-before-sigmoid MLP at init, 500 training images: W₂ multiplied by 10; the '
             'same MLP trained with SGD at lr 0.1 without weight decay: ‖W₂‖ at 1,500 steps',
        checks=(
            Check('output-change-scale-10', 'relative change of the logits when W₂ is multiplied by 10, '
                  'train mode, init', '<', 1e-4),
            Check('gradient-ratio-scale-10', '‖∇L(10 W₂)‖ / ‖∇L(W₂)‖, train mode, init', 'near', 1e-3, target=0.1),
            Check('norm-ratio-no-wd', 'smallest ‖W₂(1500)‖/‖W₂(0)‖ over seeds, weight decay 0', '>', 1.0),
        ),
        verdict='illustration', explanation=None,
        why='All three hold by construction (only BN\'s ε breaks the invariance; ‖W′‖² = ‖W‖² + η²‖∇L‖² when '
            '∇L is orthogonal to W): they check the algebra.',
    ),
    Claim(
        id='weight-decay-effective-lr', notebook='08',
        statement='With BN, weight decay does not regularize the weights before BN; it sets their scale and '
                  'thereby the effective learning rate η/‖W‖², and the angle per step tends to an equilibrium '
                  '√(2ηλ).',
        source='van Laarhoven 2017; Arora, Li & Lyu 2019; Kosson, Messmer & Jaggi 2024',
        test='784-100-100-100-10 BN-before-sigmoid MLP: ‖W₂‖ and the angle per step during 3,000 steps of SGD '
             'at lr 0.1 with weight decay 0, 5·10⁻⁴, 5·10⁻³ on every parameter, and on fc1–fc3 only',
        checks=(
            Check('norm-ratio-wd', 'largest ‖W₂(1500)‖/‖W₂(0)‖ over seeds, weight decay 5·10⁻⁴', '<', 0.99),
            Check('equilibrium-angle', 'mean angle per step of W₂ over the last 1,000 of 3,000 steps ÷ √(2ηλ), '
                  'λ = 5·10⁻³ (six time constants 1/(4ηλ) of the norm in), mean over seeds (band set after an '
                  'earlier 5,000-step run)', 'between', (0.7, 1.3),
                  asserted=False),
            Check('accuracy-fc-only-decay', f'mean paired (λ = 5·10⁻³ on fc1–fc3 only − λ = 0) over seeds, '
                  f'3,000 steps, {_ACC}', '<', -0.01, asserted=False),
            Check('accuracy-fc-only-decay-5e-4', f'mean paired (λ = 5·10⁻⁴ on fc1–fc3 only − λ = 0) over seeds, '
                  f'3,000 steps, {_ACC}', '<', 0.0, asserted=False),
        ),
        verdict='supported', explanation='learning-rate',
        why='‖W₂‖ grows without weight decay (by construction) and shrinks with it (×0.975–0.979 at 1,500 steps, '
            'λ = 5·10⁻⁴), η/‖W‖² rises with λ, the angle per step approaches √(2ηλ) from below in layers 2–3 '
            '(0.71 of it in layer 2 after 3,000 steps at λ = 5·10⁻³, six time constants: the drifting gradient '
            'scale holds it back; layer 1 overshoots at λ = 5·10⁻⁴), the train − test gap does not shrink with '
            'weight decay (about 0.02 in every arm), '
            'and decaying only the scale-invariant fc1–fc3 costs about as much accuracy as decaying everything '
            '(λ = 5·10⁻³: −0.033 ± 0.007 vs −0.036 ± 0.005; λ = 5·10⁻⁴: −0.004 ± 0.001 vs −0.005 ± 0.001).',
    ),
)
