"""Generators trained on the members T, the baselines of Chapter 2 (Dong et al. 2022, Sec. 5.3):
a conditional GAN (:mod:`.cgan`) and the differentially private DP-MERF (:mod:`.dp_merf`).
Both return :class:`~ddrepro.synthetic.SyntheticSet` s, evaluated like any condensed set."""

from .cgan import CGANConfig, cgan_set, train_cgan
from .dp_merf import DPMERFConfig, dp_merf_set, noise_multiplier, train_dp_merf

__all__ = ["CGANConfig", "DPMERFConfig", "cgan_set", "dp_merf_set", "noise_multiplier",
           "train_cgan", "train_dp_merf"]
