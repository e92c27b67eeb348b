"""bnlab: the helper package of the course *Why batch normalization works*.

Modules (import what you need, e.g. ``from bnlab import models, train``):

- ``bnlab.functional``  NumPy batch/layer norm forward and backward (homework reference)
- ``bnlab.gradcheck``   finite differences and relative errors
- ``bnlab.check``       homework checkers that compare a student's function with the reference
- ``bnlab.layers``      torch modules: BatchNorm, NoisyBatchNorm, LpNorm, ...
- ``bnlab.models``      ``mlp(...)`` and the deep linear network
- ``bnlab.data``        ``load("fashion-mnist" | "mnist")``
- ``bnlab.train``       ``fit(...)`` returning a ``History``
- ``bnlab.trainable``   train only chosen parameters (BN's γ and β, the output layer, a random subset)
- ``bnlab.schedules``   learning-rate schedules (a doubling stress test) and where a run fails
- ``bnlab.toys``        small closed-form toys (a layer tracking a drifting input)
- ``bnlab.probes``      activation percentiles, gradient norms, ICS, landscape measures, Jacobian spectra
- ``bnlab.plots``       the course's figure style and recurring figure types
"""
from __future__ import annotations

from bnlab.runtime import is_quick, quick, resolve_device, seed_everything

__version__ = "0.1.0"
__all__ = ["is_quick", "quick", "resolve_device", "seed_everything", "__version__"]
