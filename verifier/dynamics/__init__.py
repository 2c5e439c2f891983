"""Training dynamics: losses, fixed-step iterates, gradient flow and :func:`train`.

* :func:`loss_and_grad` / :func:`log_loss_and_grad`: exponential and logistic losses of
  the margins, computed in log space (:mod:`verifier.dynamics.losses`);
* :func:`iterates`: fixed-step gradient, sign, coordinate descent and Adam
  (:mod:`verifier.dynamics.steps`), the trajectories the embedding checks compare;
* :func:`gradient_flow`: ``d theta/dt = -grad loss`` with scipy's ODE solvers
  (:mod:`verifier.dynamics.flow`);
* :func:`train` / :class:`TrainResult`: full-batch training with the loss-adaptive step
  of the late phase, history of margins and ``(eps, delta)``, checkpoints
  (:mod:`verifier.dynamics.training`).

>>> import numpy as np, verifier
>>> net = verifier.mlp([2, 1], activation="identity")
>>> value, grad = verifier.dynamics.loss_and_grad(net, np.zeros(2), np.eye(2), np.array([1.0, -1.0]))
>>> value, grad.tolist()
(2.0, [-1.0, 1.0])
"""

from .flow import FLOW_METHODS, gradient_flow
from .losses import LOSSES, TrainingError, log_loss_and_grad, log_loss_from_margins, loss_and_grad
from .steps import METHOD_NORM, METHODS, iterates, steepest_direction
from .training import SCHEDULES, TrainResult, train

__all__ = ["FLOW_METHODS", "LOSSES", "METHODS", "METHOD_NORM", "SCHEDULES", "TrainResult", "TrainingError",
           "gradient_flow", "iterates", "log_loss_and_grad", "log_loss_from_margins", "loss_and_grad",
           "steepest_direction", "train"]
