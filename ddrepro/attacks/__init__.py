"""Attacks on trained models and on the data behind them, one file per attack family.

Membership inference (Chapter 2): :mod:`.mia` (loss threshold, Dong et al. 2022 Eq. 7) and
:mod:`.lira` (likelihood-ratio attack, Carlini et al. 2022). Poisoning (Chapter 3):
:mod:`.poison` (DM poisoning, gradient matching, the direct attack) and :mod:`.study`
(one cell of the attack-and-defense grid). Import the modules by name; nothing is imported here.
"""
