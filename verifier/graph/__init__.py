"""The network IR (a validated networkx graph), its JSON format and builders."""

from .builders import ACTIVATIONS, cnn, diagonal_linear, mlp, parse_activation
from .network import FORMAT_NAME, FORMAT_VERSION, Network, Node

__all__ = ["ACTIVATIONS", "FORMAT_NAME", "FORMAT_VERSION", "Network", "Node", "cnn", "diagonal_linear", "mlp",
           "parse_activation"]
