"""Measurements taken on a model during training, usable as ``fit`` probes.

One module per role; every public name is importable from ``bnlab.probes``:

- ``core``         ``preserved_state`` (every probe leaves the model bit-identical), ``batch_loss``
- ``activations``  percentiles of a nonlinearity's input, per-layer mean/std/saturation
- ``series``       drift, jitter, window means and the typical unit of a probe series
- ``gradients``    per-layer gradient norms and their growth per layer
- ``jacobians``    layer and input-to-output Jacobians, their singular values (Ioffe & Szegedy 2015, §3.3)
- ``ics``          internal covariate shift (Santurkar et al. 2018, Def. 2.1)
- ``landscape``    loss range, gradient predictiveness, effective β-smoothness (Santurkar et al. 2018, §3)
- ``bn_terms``     the ingredients of Santurkar et al. 2018, Theorem 4.1
- ``weights``      weight norms, effective learning rate η/‖W‖², angular updates, scale invariance
- ``shape``        excess kurtosis per unit and of a layer's pooled histogram
- ``curvature``    the top Hessian eigenvalues (sharpness) by Lanczos on Hessian-vector products; curvature along the gradient
- ``inference``    accuracy with running vs batch vs recomputed BN statistics; end-of-training probes
- ``noise``        the spread of batch statistics and dropout's variance shift, measured and predicted
"""
from __future__ import annotations

from bnlab.probes.core import MODES, LossOf, preserved_state, batch_loss
from bnlab.probes.activations import DEFAULT_PERCENTILES, ACTIVATION_TYPES, activation_modules, record, record_inputs, unit_percentiles, layer_stats, activation_stats, probe_batch, InputPercentiles, ActivationStats, stack_records
from bnlab.probes.series import drift, jitter, unit_drifts, typical_unit, window_means
from bnlab.probes.gradients import gradient_norms, GradientNorms, growth_per_layer
from bnlab.probes.ics import layer_groups, ICS, ics, ics_probe, stack_ics, ics_series
from bnlab.probes.landscape import DEFAULT_STEP_MULTIPLIERS, Landscape, landscape, landscape_probe, stack_landscapes
from bnlab.probes.jacobians import STATISTICS, blocks, frozen_statistics, layer_jacobians, input_output_jacobian, batch_jacobians, JacobianSpectra, jacobian_spectra
from bnlab.probes.bn_terms import BNGradientTerms, bn_gradient_terms, bn_gradient_probe
from bnlab.probes.weights import (weight_layers, weight_norms, effective_learning_rates, angle,
                                  grad_weight_cosine, scale_response, WeightProbe, ParameterSnapshot)
from bnlab.probes.shape import excess_kurtosis, pooled_excess_kurtosis, KurtosisProbe
from bnlab.probes.curvature import (TopEigenvalue, HessianEigenvalues, hessian_vector_product, hessian_eigenvalues,
                                   top_hessian_eigenvalue, gradient_curvature, Sharpness, HessianSpectrum)
from bnlab.probes.inference import STATISTICS, evaluate, with_population_statistics, final
from bnlab.probes.noise import batch_statistics, batch_mean_std, batch_variance_std, dropout_variance_ratio, dropout_variance_shift

__all__ = [
    "STATISTICS",
    "evaluate",
    "with_population_statistics",
    "final",
    "batch_statistics",
    "batch_mean_std",
    "batch_variance_std",
    "dropout_variance_ratio",
    "dropout_variance_shift",
    "DEFAULT_PERCENTILES",
    "ACTIVATION_TYPES",
    "MODES",
    "activation_modules",
    "record",
    "record_inputs",
    "unit_percentiles",
    "layer_stats",
    "activation_stats",
    "probe_batch",
    "InputPercentiles",
    "ActivationStats",
    "stack_records",
    "drift",
    "jitter",
    "unit_drifts",
    "typical_unit",
    "gradient_norms",
    "GradientNorms",
    "growth_per_layer",
    "STATISTICS",
    "blocks",
    "frozen_statistics",
    "layer_jacobians",
    "input_output_jacobian",
    "batch_jacobians",
    "JacobianSpectra",
    "jacobian_spectra",
    "layer_groups",
    "ICS",
    "ics",
    "ics_probe",
    "stack_ics",
    "ics_series",
    "DEFAULT_STEP_MULTIPLIERS",
    "LossOf",
    "preserved_state",
    "batch_loss",
    "Landscape",
    "landscape",
    "landscape_probe",
    "stack_landscapes",
    "BNGradientTerms",
    "bn_gradient_terms",
    "window_means",
    "bn_gradient_probe",
    "weight_layers",
    "weight_norms",
    "effective_learning_rates",
    "angle",
    "grad_weight_cosine",
    "scale_response",
    "WeightProbe",
    "ParameterSnapshot",
    "excess_kurtosis",
    "pooled_excess_kurtosis",
    "KurtosisProbe",
    "TopEigenvalue",
    "HessianEigenvalues",
    "hessian_eigenvalues",
    "gradient_curvature",
    "HessianSpectrum",
    "hessian_vector_product",
    "top_hessian_eigenvalue",
    "Sharpness",
]
