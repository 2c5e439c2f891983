"""Graph analyses: homogeneity calculus and symbolic evaluation."""

from .homogeneity import QuasiHomogeneity, degree, input_degree, node_degrees, quasi_homogeneous_weights
from .symbolic_eval import region_functions, symbolic_forward

__all__ = ["QuasiHomogeneity", "degree", "input_degree", "node_degrees", "quasi_homogeneous_weights", "region_functions", "symbolic_forward"]
