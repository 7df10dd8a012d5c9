"""RDM-DC (Zheng & Li, UAI 2023, Alg. 3): distribution matching with a calibrated class mean.

Not a copy of DM: it is DM's own loop (:func:`ddrepro.condense.dm.run`) with
``DMConfig.mean_estimator`` set to the calibrated mean of Alg. 4
(:class:`ddrepro.robust.MeanEstimatorConfig`), and noise initialisation as in
Alg. 3. The default poisoning rate is the paper's CIFAR-10 setting: 1 % of the
training set, all in one class of ten, is eps_p = 0.1 of that class (end of
Sec. 4.3), so ``k = ceil(3 * 0.1 * 256) = 77`` of a real batch of 256 are dropped.
"""

from __future__ import annotations

from ..config import DMConfig
from ..robust import MeanEstimatorConfig, as_config
from . import dm
from .base import Context, register

RDM_DEFAULT = DMConfig(mean_estimator=MeanEstimatorConfig("calibrated", rate=0.1, power_iterations=10))


@register("rdm", DMConfig, default_init="noise", default_config=RDM_DEFAULT, weights=False)
def run(ctx: Context, syn_images, syn_labels):
    """DM's loop with the calibrated mean; any other estimator in the config is an error."""
    spec = as_config(ctx.config.mean_estimator)
    if spec.name != "calibrated":
        raise ValueError(f"rdm is DM with the calibrated mean; its config has mean_estimator "
                         f"{spec.name!r}. Pass DMConfig(mean_estimator=MeanEstimatorConfig('calibrated', "
                         "rate=...)) or use 'dm' for other estimators.")
    return dm.run(ctx, syn_images, syn_labels)


__all__ = ["RDM_DEFAULT", "run"]
