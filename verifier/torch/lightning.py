"""The :class:`KKTMonitor` as a PyTorch Lightning callback (needs the ``lightning`` package).

>>> import torch, lightning as L
>>> from verifier.torch import KKTCallback
>>> from verifier.datasets import linearly_separable
>>> X, y = linearly_separable(16, 2, margin=0.2, seed=0)
>>> class Lit(L.LightningModule):
...     def __init__(self):
...         super().__init__()
...         self.net = torch.nn.Sequential(torch.nn.Linear(2, 4, bias=False), torch.nn.ReLU(),
...                                        torch.nn.Linear(4, 1, bias=False))
...     def forward(self, x):
...         return self.net(x)
...     def training_step(self, batch, i):
...         x, t = batch
...         return torch.exp(-t * self(x)[:, 0]).mean()
...     def configure_optimizers(self):
...         return torch.optim.SGD(self.parameters(), lr=0.1)
>>> data = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
>>> cb = KKTCallback(X, y, every=2, verbose=False)
>>> type(cb).__name__, cb.monitor is None      # the monitor is built when fitting starts
('KKTCallback', True)

Then ``L.Trainer(max_steps=4, callbacks=[cb]).fit(Lit(), loader)`` records the
steps 0, 2, 4 in ``cb.monitor.history`` (``tests/unit/test_torch_monitor.py`` runs it).
"""

from __future__ import annotations

from typing import Any

from ..importers._common import require
from .monitor import KKTMonitor


def make_callback(X: Any, y: Any, **kwargs: Any) -> Any:
    """A ``lightning.pytorch.Callback`` running a :class:`KKTMonitor` on the module being fitted."""
    try:
        pl = require("lightning.pytorch", "lightning")
    except ImportError:  # pragma: no cover - the standalone package
        pl = require("pytorch_lightning", "lightning")

    class KKTCallback(pl.Callback):  # type: ignore[name-defined,misc]
        """Records :class:`KKTMonitor` entries at ``trainer.global_step`` (every ``every`` optimizer steps)."""

        def __init__(self) -> None:
            super().__init__()
            self.monitor: KKTMonitor | None = None

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            if self.monitor is None:
                self.monitor = KKTMonitor(pl_module, X, y, **kwargs)
                self.monitor.step(int(trainer.global_step), force=True)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            step = int(trainer.global_step)
            if self.monitor is not None and (not self.monitor.history or self.monitor.history[-1]["step"] != step):
                self.monitor.step(step)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            step = int(trainer.global_step)
            if self.monitor is not None and self.monitor.history and self.monitor.history[-1]["step"] != step:
                self.monitor.step(step, force=True)

    return KKTCallback()


__all__ = ["make_callback"]
