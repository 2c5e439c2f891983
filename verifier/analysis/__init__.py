"""Graph analyses: homogeneity calculus and symbolic evaluation."""

from .homogeneity import QuasiHomogeneity, node_degrees, quasi_homogeneous_weights
from .symbolic_eval import region_functions, symbolic_forward

__all__ = ["QuasiHomogeneity", "node_degrees", "quasi_homogeneous_weights", "region_functions", "symbolic_forward"]
