"""Numeric engine: forward, margins, per-constraint gradients, Gram matrix, kinks."""

from .data import Constraints, check_inputs, check_labels, constraints
from .engine import (ForwardPass, Kink, backward, forward, gram, gram_cross_from, gram_factors, gram_from, jacobian_from,
                     jvp_from, kinks, kinks_from, margin_jacobian, margins, margins_from, prepare, run_forward,
                     weighted_gradient_from)

__all__ = ["Constraints", "ForwardPass", "Kink", "backward", "check_inputs", "check_labels", "constraints",
           "forward", "gram", "gram_cross_from", "gram_factors", "gram_from", "jvp_from", "jacobian_from", "kinks", "kinks_from", "margin_jacobian",
           "margins", "margins_from", "prepare", "run_forward", "weighted_gradient_from"]
