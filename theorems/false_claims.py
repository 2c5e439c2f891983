"""Known-false claims: a true theorem with one assumption dropped, and the check a counterexample fails.

Each claim is the negation of a theorem of this library
(:meth:`~theorems.base.Theorem.negated`): the same checker, run on instances
that violate the dropped assumption.  ``verifier theorems check NAME`` is
expected to find a counterexample (exit status 1), shrink it and name the
failing sub-check, which must be one of ``expected_failures``.  Each claim is
*decided* by the sub-checks of its conclusion (``decisive``: ``kkt`` for "...
preserves KKT points"); the others (``isometry``, ``gradient``) are reported as
diagnostics, so the shrinker cannot settle for an instance where only the
dropped assumption visibly fails:

====================================  ==========================================  ====================
claim                                 dropped assumption                          fails
====================================  ==========================================  ====================
``split-without-isometry``            ratios on the unit sphere (rescale a, b)    ``isometry``, ``kkt``
``channel-split-without-isometry``    the same, for a convolution channel         ``isometry``, ``kkt``
``power2-split``                      1-homogeneous activation (``z^2``)          ``function``
``sign-descent-trajectory``           gradient descent (sign descent instead)     ``gd_trajectory``
``adam-trajectory``                   gradient descent (Adam instead)             ``gd_trajectory``
``coordinate-descent-trajectory``     gradient descent (coordinate descent)       ``gd_trajectory``
``linf-kkt-embedding``                the l2 margin (l_inf max-margin KKT)        ``kkt``
====================================  ==========================================  ====================

(``function`` passes for the rescale: the claim fails although the function
is preserved -- "any output-preserving split preserves KKT points" is false.)

>>> from theorems import false_claims
>>> res = false_claims.SPLIT_WITHOUT_ISOMETRY.search(examples=20, seed=0)
>>> res.holds, res.counterexample.failed
(False, ['isometry', 'gradient', 'kkt'])
"""

from __future__ import annotations

from . import channel_splitting, neuron_splitting, trajectories

SPLIT_WITHOUT_ISOMETRY = neuron_splitting.THEOREM.negated(
    "isometric-ratios", name="split-without-isometry",
    title="(false) Any output-preserving neuron split preserves KKT points",
    statement=("Claim: if a linear map T splits a hidden neuron into copies with incoming ratios a_k and outgoing "
               "ratios b_k, a_k, b_k > 0, sum a_k b_k = 1 (so Phi~(T theta) = Phi(theta) for a 1-homogeneous "
               "activation), then theta is KKT for (P_Phi) iff T theta is KKT for (P_Phi~). False: without "
               "sum a_k^2 = sum b_k^2 = 1 and a = b, T is not an isometry, norms change and the max-margin "
               "problem is not mapped to itself."),
    latex=r"\sum_k a_k b_k = 1 \ \not\Longrightarrow\ \big(\theta\in\mathrm{KKT}(P_\Phi)\iff T\theta\in\mathrm{KKT}(P_{\tilde\Phi})\big)",
    expected=False, expected_failures=("isometry", "kkt"), decisive=("kkt",), default_examples=100,
)

CHANNEL_SPLIT_WITHOUT_ISOMETRY = channel_splitting.THEOREM.negated(
    "isometric-ratios", name="channel-split-without-isometry",
    title="(false) Any output-preserving channel split preserves KKT points",
    statement=("Claim: an output-preserving rescale of a convolution channel (incoming a_k, outgoing b_k, "
               "sum a_k b_k = 1) preserves KKT points. False for the same reason as for neurons."),
    latex=r"\sum_k a_k b_k = 1 \ \not\Longrightarrow\ T\theta\in\mathrm{KKT}(P_{\tilde\Phi})",
    expected=False, expected_failures=("isometry", "kkt"), decisive=("kkt",), default_examples=50,
)

POWER2_SPLIT = neuron_splitting.THEOREM.negated(
    "one-homogeneous", name="power2-split",
    title="(false) Isometric neuron splitting works for z^2 activations too",
    statement=("Claim: for a network with activation z^2 (or relu(z)^2), splitting a hidden neuron with ratios "
               "alpha_k > 0, sum alpha_k^2 = 1 preserves the function and KKT points. False: the copies add up to "
               "sum alpha_k^3 < 1 times the old neuron; no non-trivial isometric output-preserving split exists for "
               "z^k, k >= 2 (only adding a zero neuron works)."),
    latex=r"\sigma(z)=z^2:\ \sum_k \alpha_k\,\sigma(\alpha_k z) = \Big(\sum_k\alpha_k^3\Big) z^2 \ne z^2",
    expected=False, expected_failures=("function",), decisive=("function", "kkt"), default_examples=100,
)

SIGN_DESCENT_TRAJECTORY = trajectories.GD.negated(
    "gradient-descent", name="sign-descent-trajectory",
    title="(false) Sign-descent iterates commute with an isometric split",
    statement=("Claim: with an isometric neuron split T, sign descent (steepest descent in l_inf, step "
               "lr ||g||_1 sign(g)) started at T theta_0 stays at T theta_k. False: sign is coordinate-wise, "
               "sign(alpha_k g) = sign(g) gives equal steps to the copies instead of alpha_k-scaled ones."),
    latex=r"\operatorname{sign}(T g) \ne T\operatorname{sign}(g)",
    expected=False, expected_failures=("gd_trajectory",), decisive=("gd_trajectory",), default_examples=100,
    variant={"method": "sign"},
)

ADAM_TRAJECTORY = trajectories.GD.negated(
    "gradient-descent", name="adam-trajectory",
    title="(false) Adam iterates commute with an isometric split",
    statement=("Claim: with an isometric neuron split T, Adam started at T theta_0 stays at T theta_k. False: "
               "Adam divides each coordinate by its own running RMS, so a copy moves as much as the original unit."),
    latex=r"\mathrm{Adam}(T g) \ne T\,\mathrm{Adam}(g)",
    expected=False, expected_failures=("gd_trajectory",), decisive=("gd_trajectory",), default_examples=100,
    variant={"method": "adam"},
)

COORDINATE_DESCENT_TRAJECTORY = trajectories.GD.negated(
    "gradient-descent", name="coordinate-descent-trajectory",
    title="(false) Coordinate-descent iterates commute with an isometric split",
    statement=("Claim: with an isometric neuron split T, coordinate descent (steepest descent in l1) started at "
               "T theta_0 stays at T theta_k. False: which coordinate is largest changes under T."),
    latex=r"\arg\max_j |(Tg)_j| \ne T\,\arg\max_j |g_j|",
    expected=False, expected_failures=("gd_trajectory",), decisive=("gd_trajectory",), default_examples=100,
    variant={"method": "coordinate"},
)

LINF_KKT_EMBEDDING = neuron_splitting.THEOREM.negated(
    "l2-margin", name="linf-kkt-embedding",
    title="(false) An l2-isometric split preserves KKT points of the l_inf max-margin problem",
    statement=("Claim: if theta is a KKT point of min 1/2 ||theta||_inf^2 s.t. q_i >= 1 (the implicit bias of sign "
               "descent), then T theta is one for the wide network, T an isometric neuron split. False: T preserves "
               "the l2 norm, not the l_inf norm; e.g. Phi = v relu(w x) at (w, v) = (1, 1) on x = 1 is l_inf-KKT, its "
               "split with (3/5, 4/5) is not."),
    latex=r"\|T\theta\|_\infty \ne \|\theta\|_\infty \ \Longrightarrow\ \mathrm{KKT}_\infty \text{ not preserved}",
    expected=False, expected_failures=("kkt",), decisive=("kkt",), default_examples=100,
)

THEOREMS = [SPLIT_WITHOUT_ISOMETRY, CHANNEL_SPLIT_WITHOUT_ISOMETRY, POWER2_SPLIT, SIGN_DESCENT_TRAJECTORY,
            ADAM_TRAJECTORY, COORDINATE_DESCENT_TRAJECTORY, LINF_KKT_EMBEDDING]
THEOREM = SPLIT_WITHOUT_ISOMETRY
