"""PyTorch workflow: a KKT monitor for training loops, a Lightning callback, checkpoints.

* :class:`KKTMonitor` -- ``mon.step(step)`` inside a plain torch loop records
  margins, ``(eps, delta)`` with multipliers, per-layer norms, balancedness and
  Lyu & Li's alignment ``beta`` in the training-history format
  (``kkt-verifier/train-history`` v1), optionally to TensorBoard;
* :func:`KKTCallback` -- the same as a PyTorch Lightning callback (needs ``lightning``);
* :func:`load_model`, :func:`load_state_dict`, :func:`read_params`,
  :func:`check_checkpoints` -- the machinery behind
  ``verifier kkt --torch model.py:Net --checkpoint DIR``.

torch is the optional extra ``[torch]``; this package imports it on first use.
(The package is ``verifier.torch``; it imports the real ``torch`` absolutely.)
"""

from __future__ import annotations

from typing import Any

from .checkpoints import CheckpointRow, check_checkpoints, find_checkpoints, load_model, load_state_dict
from .monitor import KKTMonitor, read_params


def KKTCallback(X: Any, y: Any, **kwargs: Any) -> Any:
    """A PyTorch Lightning callback that runs a :class:`KKTMonitor` on ``pl_module`` every ``every`` steps.

    Keyword arguments go to :class:`KKTMonitor` (``every``, ``log``, ``loss``, ...).
    The monitor is built at ``on_fit_start`` and is then ``callback.monitor``.
    Needs the ``lightning`` package (``pip install 'kkt-verifier[lightning]'``).
    """
    from .lightning import make_callback

    return make_callback(X, y, **kwargs)


__all__ = ["KKTMonitor", "KKTCallback", "read_params", "load_model", "load_state_dict", "find_checkpoints",
           "check_checkpoints", "CheckpointRow"]
