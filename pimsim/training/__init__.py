"""Training: conventional QAT, PIM-aware training (PIM-QAT, adjusted precision,
variability-aware training), per-chip BN calibration and self-tuning, datasets and checkpoints.

Training wraps the oracle's PIM layers (:mod:`pimsim.oracle`): the forward value of a PIM-QAT
layer is the oracle's own computation, never a copy of it. Imports torch.
"""
