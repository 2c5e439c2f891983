"""Hypothesis: random small architectures satisfy Euler's identity, G = J J^T and the scaling law."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import verifier
from verifier.numeric import gram_from, jacobian_from, margins_from, prepare

ACTS = st.sampled_from(["relu", "identity", "abs", "leaky_relu:0.3", "power:2", "relu_power:2", "relu_power:3"])


@st.composite
def nets(draw):
    if draw(st.booleans()):
        widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
        return verifier.mlp(widths + [draw(st.sampled_from([1, 3]))], activation=draw(ACTS),
                            bias=draw(st.sampled_from(["none", "first"])))
    return verifier.cnn((draw(st.integers(1, 2)), 5, 5), channels=draw(st.lists(st.integers(1, 2), min_size=1, max_size=2)),
                        kernel_size=draw(st.integers(1, 3)), padding=1, pool=draw(st.sampled_from(["max", "avg", None])),
                        outputs=draw(st.sampled_from([1, 2])), activation=draw(st.sampled_from(["relu", "abs", "leaky_relu:0.1"])))


@given(net=nets(), seed=st.integers(0, 2**16), n=st.integers(1, 5))
def test_euler_gram_and_scaling(net, seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *net.input_shape))
    C = net.num_outputs
    y = rng.choice([-1.0, 1.0], size=n) if C == 1 else rng.integers(0, C, size=n)
    theta = net.flatten(net.init_params(seed))
    L = verifier.degree(net)
    fp, cons = prepare(net, theta, X, y)
    J = jacobian_from(fp, cons)
    q = margins_from(fp, cons)
    scale = 1 + np.abs(q).max() + np.abs(J).max() * np.abs(theta).max()
    assert np.allclose(J @ theta, L * q, rtol=1e-9, atol=1e-10 * scale)
    assert np.allclose(gram_from(fp, cons), J @ J.T, rtol=1e-9, atol=1e-10 * scale**2)
    c = 1.7
    assert np.allclose(verifier.margins(net, c * theta, X, y), c**L * q, rtol=1e-9, atol=1e-10 * scale)
