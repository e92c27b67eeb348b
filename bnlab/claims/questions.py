"""The questions the course's source texts ask about batch norm, and the registered claims that answer each.

Notebook 10 shows one row per question with the verdicts of its claims (read from the
recorded results). ``SEED_QUESTIONS`` only points at claims; what was measured and the
verdict live in the claims registry and the results files.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Question", "SEED_QUESTIONS"]


@dataclass(frozen=True)
class Question:
    """A claim made about BN in the course's source texts, and the registered claims that test it.

    Attributes:
        text: the claim as the source texts put it.
        source: who made it (paper and section, or "lore" for what lecture notes and forums repeat).
        claims: ids of registered claims (``bnlab.claims.get``) whose measurements answer it.
        notebooks: where to read the evidence.
    """

    text: str
    source: str
    claims: tuple[str, ...]
    notebooks: str


SEED_QUESTIONS: tuple[Question, ...] = (
    Question("BN trains the same network much faster.", "Ioffe & Szegedy 2015, Fig. 1, §4.2",
             ("faster-training", "well-scaled-start"), "03"),
    Question("BN stabilizes the distribution of the nonlinearities' inputs.", "Ioffe & Szegedy 2015, §1, Fig. 1(b,c)",
             ("stable-distributions",), "03"),
    Question("Internal covariate shift is not what BN's success depends on.", "Santurkar et al. 2018, §2",
             ("ics-not-needed", "ics-not-reduced"), "04"),
    Question("BN makes the loss landscape smoother and the gradients more Lipschitz and predictive.",
             "Santurkar et al. 2018, §3-4",
             ("smoother-landscape", "theorem-4.1-reading", "edge-of-stability", "population-statistics-outliers"),
             "05, 09"),
    Question("BN allows much higher learning rates.", "Ioffe & Szegedy 2015, §3.3; Bjorck et al. 2018",
             ("higher-lr", "lr-main-benefit", "bn-high-lr", "scale-invariance-for-high-lr", "weight-decay-effective-lr"), "06, 08, 09"),
    Question("BN works by normalizing through the gradient: the statistics must be part of the computation the "
             "gradient sees.", "Ioffe & Szegedy 2015, §2", ("section2-drift", "forward-normalization-alone"), "09"),
    Question("BN makes training less sensitive to the initialisation.", "Ioffe & Szegedy 2015, §3.3",
             ("init-insensitivity", "small-init-plateau"), "00, 06"),
    Question("BN helps against exploding gradients (or, at init, causes them).", "lore; Yang et al. 2019",
             ("gradient-explosion", "layer-jacobians"), "06"),
    Question("BN regularizes, and in some cases eliminates the need for dropout.", "Ioffe & Szegedy 2015, §3.4, §4.2.1",
             ("regularizer", "dropout-bn-clash"), "07"),
    Question("BN's regularization weakens with larger batches (less noise).", "lore; Hoffer et al. 2017",
             ("batch-size", "ghost-bn"), "07"),
    Question("At inference, running averages (with bias correction) stand in for the population statistics.",
             "Ioffe & Szegedy 2015, Alg. 2; frameworks' EMA",
             ("running-averages", "precise-bn", "inference-statistics"), "01, 07"),
    Question("BN fails with small batches; use LayerNorm or GroupNorm there.", "Wu & He 2018",
             ("small-batch",), "07"),
    Question("The bias of a layer before BN is redundant.", "Ioffe & Szegedy 2015, §3.2",
             ("bias-before-bn", "bias-redundant"), "02, 08"),
    Question("BN's β can add overfitting.", "lore", ("beta-overfits",), "08"),
    Question("γ and β are what make BN work (Goodfellow) — or removing them is better (Mishkin).",
             "Goodfellow et al. 2016, §8.7.1; Mishkin et al. 2017", ("gamma-beta", "bn-only-training"), "08"),
    Question("BN after the nonlinearity works better than before it.", "Mishkin et al. 2017",
             ("bn-after-activation",), "08"),
    Question("BN makes neuron inputs Gaussian-like, which suits GELU.", "Hendrycks & Gimpel 2016",
             ("gelu-gaussian",), "08"),
)
