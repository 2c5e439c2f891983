"""Embeddings of a network into a wider one, and the checks of docs/math.md section 10.

* :func:`neuron_split` / :func:`channel_split`: split a hidden unit into copies with
  ratios ``alpha_k > 0``, ``sum alpha_k^2 = 1`` (an isometry ``T`` with
  ``Phi~(T theta) = Phi(theta)``), or an output-preserving rescale;
* :func:`add_zero_neuron`: the trivial embedding (zero in- and out-weights);
* :func:`parse_split` / :func:`make_embedding`: the one grammar of a split specification
  (``"layer=1,neuron=3,ratios=3/5,4/5"``), shared by the CLI and the certificate producer;
* :class:`Embedding`: the map object (also for a user-supplied ``T``), :func:`compose`;
* :func:`check_embedding`: isometry, function, gradient, KKT, GD and flow
  trajectories, limit direction, each with its figure and, on failure, the reason.
"""

from .checks import Check, EmbeddingReport, check_embedding
from .maps import Embedding, add_zero_neuron, channel_split, compose, neuron_split, power_explanation
from .ratios import EmbeddingError, parse_ratios
from .spec import MAX_ZERO_UNITS, make_embedding, parse_split

__all__ = ["Check", "Embedding", "EmbeddingError", "EmbeddingReport", "add_zero_neuron", "channel_split",
           "check_embedding", "compose", "make_embedding", "neuron_split", "parse_ratios", "parse_split",
           "power_explanation", "MAX_ZERO_UNITS"]
