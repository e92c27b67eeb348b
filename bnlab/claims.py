"""The claims the course tests, where each is tested, and where it comes from.

Notebook 00 lists them; each later notebook asserts its own with measured
values; notebook 09 reads the verdicts back into a scorecard.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Claim", "CLAIMS", "claims_markdown"]


@dataclass(frozen=True)
class Claim:
    """One testable statement about batch normalization.

    Attributes:
        id: short key, e.g. "faster-training".
        notebook: the notebook that measures it, e.g. "03".
        statement: the claim in one sentence, as the course tests it.
        source: who made the claim (author, year, section).
        test: what is measured and the threshold the claim check asserts.
    """

    id: str
    notebook: str
    statement: str
    source: str
    test: str


CLAIMS: tuple[Claim, ...] = (
    Claim("algorithm", "01", "BN normalizes each feature with batch statistics in training and "
          "running (population) statistics at inference.", "Ioffe & Szegedy 2015, Alg. 1-2",
          "NumPy forward and our torch layer equal torch.nn.BatchNorm1d/2d to 1e-5 (float32)"),
    Claim("backward", "02", "The gradient through BN follows the paper's backward equations and is "
          "orthogonal to shifts and rescalings of the batch.", "Ioffe & Szegedy 2015, §3",
          "staged and closed-form backward vs finite differences and autograd: rel. error < 1e-8 (float64)"),
    Claim("scale-invariance", "02", "BN((aW)u) = BN(Wu): larger weights get proportionally smaller "
          "gradients.", "Ioffe & Szegedy 2015, §3.3",
          "∂/∂(aW) = (1/a)·∂/∂W numerically for several a"),
    Claim("faster-training", "03", "BN trains the same network much faster.",
          "Ioffe & Szegedy 2015, Fig. 1(a)",
          "init std 0.01, lr 0.5, 1000 steps: BN ≥ 0.75 test accuracy, plain ≤ 0.35"),
    Claim("stable-distributions", "03", "With BN the input to a sigmoid keeps a stable distribution; "
          "without, it drifts.", "Ioffe & Szegedy 2015, Fig. 1(b,c)",
          "median sigmoid input drifts ≥ 3 units without BN, ≤ 1.5 with BN (over 10k+ steps)"),
    Claim("ics-not-needed", "04", "BN still helps when we inject distribution shift after it "
          "(noisy BN): stable distributions are not what makes it work.",
          "Santurkar et al. 2018, §2.1",
          "noisy BN trains like BN (within 0.01) and far ahead of plain early on, lr 0.1"),
    Claim("ics-not-reduced", "04", "BN does not reduce internal covariate shift measured as the change "
          "of a layer's gradient after the layers below update.", "Santurkar et al. 2018, §2.2, Def. 2.1",
          "‖G−G′‖ and cos(G,G′) per layer, MLP and deep linear network"),
    Claim("smoother-landscape", "05", "BN makes the loss landscape smoother and the gradients more "
          "predictive.", "Santurkar et al. 2018, §3, Fig. 4",
          "relative gradient predictiveness lower with BN at lr 0.5 (ratio ≥ 1.2); ℓp norms train like BN"),
    Claim("higher-lr", "06", "BN allows higher learning rates and makes training less sensitive to "
          "initialisation.", "Ioffe & Szegedy 2015, §3.3",
          "LR × init-scale grid with and without BN"),
    Claim("gradient-explosion", "06", "At initialisation BN *causes* gradient explosion in deep "
          "networks: ≈ √(π/(π−1)) growth per layer.", "Yang et al. 2019",
          "depth-30 ReLU MLP: per-layer gradient-norm growth 1.15-1.25 with BN, 0.95-1.05 without"),
    Claim("regularizer", "07", "BN regularizes through the noise of batch statistics; small batches "
          "break it.", "Ioffe & Szegedy 2015, §3.4; Wu & He 2018",
          "noise vs batch size; dropout variance shift Var_train/Var_test = 1/p within 2%"),
    Claim("design", "08", "Where BN goes and whether it has γ, β matters less than folklore says.",
          "Ioffe & Szegedy 2015; Goodfellow et al. 2016; Mishkin et al. 2017",
          "before/after the nonlinearity, affine or not, bias, effective learning rate η/‖w‖²"),
)


def claims_markdown(claims: tuple[Claim, ...] = CLAIMS) -> str:
    """The claims as a Markdown table (for ``IPython.display.Markdown``)."""
    rows = ["| notebook | claim | source | what we measure |", "|---|---|---|---|"]
    rows += [f"| {c.notebook} | {c.statement} | {c.source} | {c.test} |" for c in claims]
    return "\n".join(rows)
