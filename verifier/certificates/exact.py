"""Exact integer tensors for the certificate checker: ``value = num / den``.

``num`` is a numpy object array of Python ints (any size), ``den`` one positive
Python int per tensor.  Every float64 is ``m * 2^e`` with an integer ``m``, so
data and parameters convert exactly; rational witnesses (``3/5``) keep a
common denominator.  The one expensive operation, the integer matrix product,
is done exactly with float64 BLAS on small limbs:

    A = sum_a A_a 2^(a b),  B = sum_c B_c 2^(c b),  |entries of A_a, B_c| < 2^b,
    k * 2^(2b) <= 2^53  =>  every partial sum of A_a @ B_c is an integer below
    2^53, so the float64 product is exact whatever the summation order;

then the limb products are recombined with carries in int64 and Horner's rule
on Python ints.  This module depends on numpy and the standard library only
(it is part of the independent checker: nothing here comes from
``verifier.numeric`` or ``verifier.ops``).

>>> A = np.array([[2**80 + 3, -5], [7, 2**70]], dtype=object)
>>> B = np.array([[1, -(2**65)], [3, 4]], dtype=object)
>>> bool(np.array_equal(imatmul(A, B, min_work=0), A.dot(B)))
True
>>> q = from_float64(np.array([0.75, -0.5, 3.0]))
>>> q.num.tolist(), q.den
([3, -2, 12], 4)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np


class Q:
    """An exact rational tensor ``num / den`` (``num``: object array of ints, ``den``: int > 0)."""

    __slots__ = ("num", "den")

    def __init__(self, num: np.ndarray, den: int = 1):
        self.num = num
        self.den = int(den)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.num.shape

    def reshape(self, *shape: int) -> "Q":
        return Q(self.num.reshape(*shape), self.den)

    def __getitem__(self, idx) -> "Q":
        return Q(self.num[idx], self.den)

    def fraction(self, idx) -> Fraction:
        return Fraction(int(self.num[idx]), self.den)

    def to_float(self) -> np.ndarray:
        return np.array([float(Fraction(int(v), self.den)) for v in self.num.ravel()]).reshape(self.num.shape)

    @property
    def T(self) -> "Q":
        return Q(self.num.T, self.den)

    def take(self, idx: np.ndarray) -> "Q":
        """Rows ``idx`` (a batch of samples, repeats allowed)."""
        return Q(self.num[idx], self.den)

    def zero_mask(self) -> np.ndarray:
        return np.asarray(self.num == 0, dtype=bool)

    def sign_mask(self, *, positive: bool) -> np.ndarray:
        """Entries ``> 0`` (``positive``) or ``< 0``."""
        return np.asarray(self.num > 0 if positive else self.num < 0, dtype=bool)

    def relu(self) -> "Q":
        return Q(np.where(self.sign_mask(positive=True), self.num, 0), self.den)

    def rescaled(self, den: int) -> np.ndarray:
        """Numerators over ``den`` (a multiple of ``self.den``)."""
        f = den // self.den
        return self.num if f == 1 else self.num * f


def zeros(shape: Sequence[int]) -> np.ndarray:
    out = np.empty(tuple(shape), dtype=object)
    out.fill(0)
    return out


def as_object(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == object else a.astype(object)


def lcm(*dens: int) -> int:
    out = 1
    for d in dens:
        out = out * d // math.gcd(out, d)
    return out


def align(*qs: Q) -> tuple[list[np.ndarray], int]:
    """Numerators of several tensors over their least common denominator."""
    D = lcm(*(q.den for q in qs))
    return [q.rescaled(D) for q in qs], D


def add(a: Q, b: Q) -> Q:
    (x, y), D = align(a, b)
    return Q(x + y, D)


def mul(a: Q, b: Q) -> Q:
    return Q(a.num * b.num, a.den * b.den)


def from_float64(a: np.ndarray) -> Q:
    """Exact value of a float64 array (finite entries) as a :class:`Q`.

    ``frexp`` gives ``a = mant * 2^ex`` with a 53-bit integer ``mant * 2^53``;
    trailing zero bits are stripped so that short dyadics stay short.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return Q(zeros(a.shape), 1)
    mant, ex = np.frexp(a)
    mi = (mant * 2.0 ** 53).astype(np.int64).ravel()
    e = ex.astype(np.int64).ravel() - 53
    nz = mi != 0
    if not nz.any():
        return Q(zeros(a.shape), 1)
    lsb = np.where(nz, mi & -mi, 1)
    tz = (np.frexp(lsb.astype(np.float64))[1] - 1).astype(np.int64)
    mi = np.where(nz, mi >> tz, 0)
    e = e + tz
    emin = int(e[nz].min())
    sh = np.where(nz, e - emin, 0)
    if int(sh.max()) <= 9:  # |mi| < 2^53: fits int64
        num = (mi << sh).astype(object)
    else:  # two's complement words of mi * 2^sh, then Python ints
        W = (int(sh.max()) + 53) // 64 + 2
        words = np.zeros((mi.size, W), dtype=np.uint64)
        rows = np.arange(mi.size)
        w, r = sh // 64, (sh % 64).astype(np.uint64)
        mu = mi.view(np.uint64)
        words[rows, w] = mu << r
        hi = np.where(r == 0, mi >> 63, mi >> np.where(r == 0, 1, 64 - r.astype(np.int64)))
        words[rows, w + 1] = hi.view(np.uint64)
        fill = (np.arange(W)[None, :] > (w + 1)[:, None]) & (mi < 0)[:, None]
        words[fill] = np.uint64(0xFFFFFFFFFFFFFFFF)
        num = words_to_ints(words)
    num = num.reshape(a.shape)
    if emin >= 0:
        return Q(num * (1 << emin) if emin else num, 1)
    return Q(num, 1 << (-emin))


def words_to_ints(words: np.ndarray) -> np.ndarray:
    """Rows of little-endian two's complement 64-bit words -> object array of Python ints."""
    N, W = words.shape
    buf = memoryview(np.ascontiguousarray(words).view("<u8").tobytes())
    step = 8 * W
    fb = int.from_bytes
    out = np.empty(N, dtype=object)
    out[:] = [fb(buf[i:i + step], "little", signed=True) for i in range(0, N * step, step)]
    return out


def ints_to_words(mag: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative Python ints (object array) -> ``(N, W)`` little-endian uint64 words."""
    W = max(1, -(-bits // 64))
    nb = 8 * W
    flat = mag.ravel()
    buf = b"".join([int(v).to_bytes(nb, "little") for v in flat])
    return np.frombuffer(buf, dtype="<u8").reshape(flat.size, W)


def from_fractions(values: Iterable[Fraction], shape: Sequence[int]) -> Q:
    vals = list(values)
    D = lcm(*(v.denominator for v in vals)) if vals else 1
    out = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):
        out[i] = v.numerator * (D // v.denominator)
    return Q(out.reshape(tuple(shape)), D)


def prod(shape: Iterable[int]) -> int:
    """Exact product of a shape (Python ints: no overflow)."""
    out = 1
    for s in shape:
        out *= int(s)
    return out


def dot_int(a: np.ndarray, b: np.ndarray) -> int:
    """Exact ``sum(a * b)`` of two integer arrays as a Python int."""
    x, y = as_object(np.asarray(a)).ravel(), as_object(np.asarray(b)).ravel()
    return int(x.dot(y)) if x.size else 0


def max_bits(a: np.ndarray) -> int:
    if a.size == 0:
        return 0
    if a.dtype != object:
        return int(np.abs(a.astype(object)).max()).bit_length()
    return int(np.abs(a).max()).bit_length()


# ---------------------------------------------------------------------------
# exact integer matrix product
# ---------------------------------------------------------------------------
def _limbs(a: np.ndarray, b: int, bits: int) -> list[np.ndarray]:
    """Signed base-``2^b`` digits of an integer matrix as float64 arrays (exact): ``a = sum_i d_i 2^(b i)``."""
    neg = a < 0
    sign = np.where(neg, -1.0, 1.0)
    nl = max(1, -(-bits // b))
    mask = np.uint64((1 << b) - 1)
    if bits <= 62:
        m64 = np.abs(a.astype(np.int64)).view(np.uint64)
        return [((m64 >> np.uint64(i * b)) & mask).astype(np.float64) * sign for i in range(nl)]
    mag = np.where(neg, -a, a)
    words = ints_to_words(mag, bits)
    out: list[np.ndarray] = []
    for i in range(nl):
        w, r = divmod(i * b, 64)
        d = words[:, w] >> np.uint64(r)
        if r + b > 64 and w + 1 < words.shape[1]:
            d = d | (words[:, w + 1] << np.uint64(64 - r))
        out.append((d & mask).astype(np.float64).reshape(a.shape) * sign)
    return out


def _combine(groups: list[np.ndarray], b: int) -> np.ndarray:
    """``sum_s groups[s] * 2^(b s)`` as Python ints: carries in int64, then one ``int.from_bytes`` per entry."""
    mask = (1 << b) - 1
    for s in range(len(groups) - 1):
        carry = groups[s] >> b
        groups[s] = groups[s] & mask
        groups[s + 1] = groups[s + 1] + carry
    shape = groups[0].shape
    S = len(groups)
    if S == 1:
        return groups[0].astype(object)
    top = groups[-1].ravel()
    o_top = b * (S - 1)
    W = o_top // 64 + 2
    words = np.zeros((top.size, W), dtype=np.uint64)
    for s in range(S - 1):
        d = groups[s].ravel().view(np.uint64)
        w, r = divmod(b * s, 64)
        words[:, w] |= d << np.uint64(r)
        if r + b > 64:
            words[:, w + 1] |= d >> np.uint64(64 - r)
    w, r = divmod(o_top, 64)
    words[:, w] |= top.view(np.uint64) << np.uint64(r)
    if r:
        words[:, w + 1] |= (top >> (64 - r)).view(np.uint64)
    else:
        words[:, w + 1] |= (top >> 63).view(np.uint64)
    return words_to_ints(words).reshape(shape)


def imatmul(A: np.ndarray, B: np.ndarray, *, min_work: int = 300_000) -> np.ndarray:
    """Exact product of integer matrices (object or int64 arrays) as an object array."""
    n, k = A.shape
    k2, m = B.shape
    if k != k2:
        raise ValueError(f"imatmul: shapes {A.shape} and {B.shape} do not match")
    if n == 0 or m == 0 or k == 0:
        return zeros((n, m))
    A = A if A.dtype == object else as_object(A)
    B = B if B.dtype == object else as_object(B)
    if n * k * m < min_work or min(n, m) <= 2 or k <= 4:
        return A.dot(B) if k else zeros((n, m))
    b = (53 - k.bit_length()) // 2
    if b < 8:  # astronomically long inner dimension: plain Python ints
        return A.dot(B)
    ba, bb = max_bits(A), max_bits(B)
    if ba == 0 or bb == 0:
        return zeros((n, m))
    LA = _limbs(A, b, ba)
    LB = _limbs(B, b, bb)
    groups = [np.zeros((n, m), dtype=np.int64) for _ in range(len(LA) + len(LB) - 1)]
    Bcat = np.concatenate(LB, axis=1) if len(LB) > 1 else LB[0]
    for i, a in enumerate(LA):
        prod = a @ Bcat  # exact: every partial sum is an integer below 2^53
        for j in range(len(LB)):
            groups[i + j] += prod[:, j * m:(j + 1) * m].astype(np.int64)
    return _combine(groups, b)


def qmatmul(a: Q, b: Q) -> Q:
    return Q(imatmul(a.num, b.num), a.den * b.den)
