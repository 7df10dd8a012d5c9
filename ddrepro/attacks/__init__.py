"""Attacks on trained models and the data behind them (Chapter 2 onwards).

Membership inference: :mod:`.mia` (loss threshold, Dong et al. 2022 Eq. 7) and
:mod:`.lira` (likelihood-ratio attack, Carlini et al. 2022). Import the
modules by name; this package keeps no state.
"""
