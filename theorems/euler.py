"""Euler's identity for homogeneous networks: ``<h, theta> = L q(theta)`` for every (chain-rule) subgradient.

The degree ``L`` comes from the homogeneity calculus (a graph walk); the
gradients ``h_r`` of the margins from the backward pass (with the engine's
derivative convention at kinks, which is one Clarke/chain-rule selection);
the identity ties the two independent computations together.  A second
sub-check tests the definition itself on the forward pass:
``Phi(c theta) = c^L Phi(theta)`` for ``c = 2`` and ``c = 1/2``.

Instances: MLPs (every activation family, bias in the first layer or none,
one or three outputs), CNNs and diagonal networks; parameters and inputs on a
dyadic grid, so exact kinks (pre-activations equal to 0, tied max-pool
windows) occur and are covered.

Negated: dropping ``homogeneous`` generates MLPs with a bias in every layer
and claims the identity with ``L`` = the number of layers: it fails on
``euler`` as soon as a deeper bias is non-zero.

>>> from theorems import euler
>>> ev = euler.THEOREM.check(euler.example())
>>> ev.verdict, sorted(ev.checks)
('holds', ['euler', 'scaling'])
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst
from verifier.errors import VerifierError
from verifier.numeric import jacobian_from, margins_from, prepare

from .base import Assumption, Check, Instance, Theorem, within

ACTIVATIONS = ("relu", "identity", "abs", "leaky_relu:0.25", "power:2", "relu_power:2", "relu_power:3")


def _homogeneous(inst: Instance) -> tuple[bool, str]:
    try:
        L = verifier.degree(inst.net)
    except VerifierError as e:
        return False, str(e)
    claimed = inst.options.get("degree", L)
    if str(L) != str(claimed):
        return False, f"the calculus gives degree {L}, the instance claims {claimed}"
    return True, f"positively homogeneous of degree {L}"


HOMOGENEOUS = Assumption(
    "homogeneous",
    "Phi is positively homogeneous of degree L in theta (the degree calculus succeeds and gives L).",
    r"\Phi(c\theta; x) = c^L \Phi(\theta; x)\ \ \forall c > 0",
    _homogeneous,
)


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    net = inst.net
    L = float(inst.options.get("degree") or verifier.degree(net))
    theta = inst.theta
    fp, cons = prepare(net, theta, inst.X, inst.y)
    J = jacobian_from(fp, cons)
    q = margins_from(fp, cons)
    lhs = J @ theta
    scale = np.abs(J) @ np.abs(theta) + L * np.abs(q)
    err = np.abs(lhs - L * q) / (1.0 + scale)
    r = int(np.argmax(err)) if err.size else 0
    yield within("euler", float(err.max()) if err.size else 0.0, tol["euler"],
                 f"<grad q_r, theta> vs L q_r with L = {L:g}: worst at {cons.label(r)}: "
                 f"{lhs[r]:.6g} vs {L * q[r]:.6g}")
    out = fp.output
    worst, where = 0.0, ""
    for c in (2.0, 0.5):
        oc = verifier.forward(net, c * theta, inst.X)
        e = np.abs(oc - c ** L * out) / (1.0 + np.abs(c ** L * out))
        if e.max() > worst or not where:
            worst, where = float(e.max()), f"c = {c:g}"
    yield within("scaling", worst, tol["scaling"], f"Phi(c theta) vs c^L Phi(theta), largest relative error at {where}")


def _instances(drop: str | None) -> st.SearchStrategy[Instance]:
    @st.composite
    def build(draw: Any) -> Instance:
        if drop == "homogeneous":
            net = draw(vst.mlps(min_depth=2, max_depth=3, max_width=3, input_dim=None,
                                activations=["relu", "identity", "abs"], bias="all"))
            L = sum(1 for p in net.param_names if p.startswith("W"))
        else:
            kind = draw(st.sampled_from(["mlp", "mlp-bias", "multiclass", "cnn", "diagonal"]))
            if kind == "mlp":
                net = draw(vst.mlps(max_depth=3, max_width=3, input_dim=None, activations=ACTIVATIONS))
            elif kind == "mlp-bias":
                net = draw(vst.mlps(max_depth=3, max_width=3, input_dim=None, activations=ACTIVATIONS, bias="first"))
            elif kind == "multiclass":
                net = draw(vst.mlps(max_depth=3, max_width=3, outputs=3, activations=ACTIVATIONS))
            elif kind == "cnn":
                net = draw(vst.cnns(input_shape=(1, 4, 4), max_channels=2,
                                    activations=["relu", "abs", "leaky_relu:0.25", "relu_power:2"]))
            else:
                net = draw(vst.diagonal_nets())
            L = None
        params = draw(vst.params_for(net, max_abs=2.0, denominator=4))
        n = draw(st.integers(1, 3))
        d = int(np.prod(net.input_shape))
        grid = st.integers(-4, 4).map(lambda k: k / 4)
        X = np.array(draw(st.lists(st.lists(grid, min_size=d, max_size=d), min_size=n, max_size=n)),
                     dtype=float).reshape((n, *net.input_shape))
        C = net.num_outputs
        y = [draw(st.sampled_from([1.0, -1.0]) if C == 1 else st.integers(0, C - 1)) for _ in range(n)]
        opts: dict[str, Any] = {} if L is None else {"degree": L}
        if drop == "homogeneous":
            assume(any(np.any(params[p] != 0) for p in net.param_names if p.startswith("b") and p != "b1"))
        return Instance(net, params, X, np.array(y, dtype=float), opts)

    return build()


def example() -> Instance:
    """A two-layer ReLU network with a sample exactly at a kink."""
    net = verifier.mlp([2, 2, 1])
    return Instance(net, {"W1": [[1.0, -1.0], [0.5, 0.25]], "W2": [[1.0, -2.0]]}, [[1.0, 1.0], [2.0, -1.0]], [1.0, -1.0])


THEOREM = Theorem(
    "euler-identity",
    title="Euler's identity for positively homogeneous networks",
    statement=("If Phi is positively homogeneous of degree L in theta, then for every input x and every "
               "chain-rule (Clarke) subgradient h of theta -> Phi(theta; x): <h, theta> = L Phi(theta; x). "
               "Hence every margin q_r satisfies <grad q_r, theta> = L q_r, and Phi(c theta) = c^L Phi(theta)."),
    latex=(r"\Phi(c\theta;x)=c^L\Phi(\theta;x)\ \forall c>0 \implies "
           r"\langle h,\theta\rangle = L\,\Phi(\theta;x)\ \ \forall h\in\partial^\circ_\theta\Phi(\theta;x)"),
    assumptions=[HOMOGENEOUS],
    check_fn=_check,
    strategy=_instances,
    tolerances={"euler": 1e-10, "scaling": 1e-10},
    negatable={"homogeneous": "MLPs with a bias in every layer, claimed degree = number of layers"},
    default_examples=300,
    references=["docs/math.md section 1", "Lyu & Li 2020, Theorem B.2"],
)

THEOREMS = [THEOREM]
