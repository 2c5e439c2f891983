"""Embeddings of a network into a wider one, and the checks of MATH.md section 7.

* :func:`neuron_split` / :func:`channel_split`: split a hidden unit into copies with
  ratios ``alpha_k > 0``, ``sum alpha_k^2 = 1`` (an isometry ``T`` with
  ``Phi~(T theta) = Phi(theta)``), or an output-preserving rescale;
* :func:`add_zero_neuron`: the trivial embedding (zero in- and out-weights);
* :class:`Embedding`: the map object (also for a user-supplied ``T``), :func:`compose`;
* :func:`check_embedding`: isometry, function, gradient, KKT, GD and flow
  trajectories, limit direction, each with its figure and, on failure, the reason.
"""

from .checks import Check, EmbeddingReport, check_embedding
from .maps import Embedding, add_zero_neuron, channel_split, compose, neuron_split, power_explanation
from .ratios import EmbeddingError, parse_ratios

__all__ = ["Check", "Embedding", "EmbeddingError", "EmbeddingReport", "add_zero_neuron", "channel_split",
           "check_embedding", "compose", "neuron_split", "parse_ratios", "power_explanation"]
