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
    """An exact rational tensor ``num / den`` (``num``: integer array, object dtype for big ints; ``den``: int > 0).

    A tensor read from float64 may stay in *dyadic* form ``num = m * 2^sh`` (``m``: int64 below 2^53,
    ``sh >= 0``) until its Python-int numerators are needed: its signs, zero pattern and the limbs of
    the exact matrix product come straight from ``(m, sh)`` in numpy int64.
    """

    __slots__ = ("_num", "den", "_limbs", "_dy")

    def __init__(self, num: np.ndarray | None, den: int = 1, *, dyadic: tuple[np.ndarray, np.ndarray] | None = None):
        self._num = num
        self.den = int(den)
        self._limbs: dict[int, list[np.ndarray]] | None = None
        self._dy = dyadic

    @property
    def num(self) -> np.ndarray:
        if self._num is None:
            assert self._dy is not None
            m, sh = self._dy
            self._num = _dyadic_ints(m.ravel(), sh.ravel()).reshape(m.shape)
        return self._num

    @num.setter
    def num(self, value: np.ndarray) -> None:
        self._num, self._dy, self._limbs = value, None, None

    def _derive(self, f) -> "Q":
        """The same operation (reshape, transpose, row selection) on every representation held."""
        out = Q(f(self._num) if self._num is not None else None, self.den,
                dyadic=(f(self._dy[0]), f(self._dy[1])) if self._dy is not None else None)
        if self._limbs:
            out._limbs = {k: [f(v) for v in ls] for k, ls in self._limbs.items()}
        return out

    def limbs(self, b: int) -> list[np.ndarray]:
        """Signed base-``2^b`` digits of the numerators (cached: a tensor used in two products is split once)."""
        if self._limbs is None:
            self._limbs = {}
        if b not in self._limbs:
            if self._dy is not None:
                self._limbs[b] = _dyadic_limbs(self._dy[0], self._dy[1], b)
            else:
                bits = max_bits(self.num)
                self._limbs[b] = _limbs(self.num, b, bits) if bits else []
        return self._limbs[b]

    @property
    def shape(self) -> tuple[int, ...]:
        if self._num is not None:
            return self._num.shape
        assert self._dy is not None
        return self._dy[0].shape

    def reshape(self, *shape: int) -> "Q":
        return self._derive(lambda a: a.reshape(*shape))

    def __getitem__(self, idx) -> "Q":
        return self._derive(lambda a: a[idx])

    def fraction(self, idx) -> Fraction:
        return Fraction(int(self.num[idx]), self.den)

    def to_float(self) -> np.ndarray:
        return np.array([float(Fraction(int(v), self.den)) for v in self.num.ravel()]).reshape(self.shape)

    @property
    def T(self) -> "Q":
        return self._derive(lambda a: a.T)

    def take(self, idx: np.ndarray) -> "Q":
        """Rows ``idx`` (a batch of samples, repeats allowed)."""
        return self._derive(lambda a: a[idx])

    def zero_mask(self) -> np.ndarray:
        if self._dy is not None:
            return self._dy[0] == 0
        return np.asarray(self.num == 0, dtype=bool)

    def sign_mask(self, *, positive: bool) -> np.ndarray:
        """Entries ``> 0`` (``positive``) or ``< 0``."""
        base = self._dy[0] if self._dy is not None else self.num
        return np.asarray(base > 0 if positive else base < 0, dtype=bool)

    def relu(self) -> "Q":
        return Q(np.where(self.sign_mask(positive=True), self.num, 0), self.den)

    def rescaled(self, den: int) -> np.ndarray:
        """Numerators over ``den`` (a multiple of ``self.den``)."""
        f = den // self.den
        return self.num if f == 1 else self.num * f


def _dyadic_ints(m: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """``m * 2^sh`` as Python ints (object array); int64 when it fits."""
    if m.size == 0:
        return zeros(m.shape)
    if int(sh.max()) <= 9:  # |m| < 2^53: fits int64
        return (m << sh).astype(object)
    W = (int(sh.max()) + 53) // 64 + 2
    words = np.zeros((m.size, W), dtype=np.uint64)
    rows = np.arange(m.size)
    w, r = sh // 64, (sh % 64).astype(np.uint64)
    mu = m.view(np.uint64)
    words[rows, w] = mu << r
    hi = np.where(r == 0, m >> 63, m >> np.where(r == 0, 1, 64 - r.astype(np.int64)))
    words[rows, w + 1] = hi.view(np.uint64)
    fill = (np.arange(W)[None, :] > (w + 1)[:, None]) & (m < 0)[:, None]
    words[fill] = np.uint64(0xFFFFFFFFFFFFFFFF)
    return words_to_ints(words)


def _dyadic_limbs(m: np.ndarray, sh: np.ndarray, b: int) -> list[np.ndarray]:
    """Signed base-``2^b`` digits of ``m * 2^sh`` (``|m| < 2^53``, ``sh >= 0``) as float64, in int64 numpy only.

    Digit ``i`` is ``floor(|m| 2^sh / 2^(b i)) mod 2^b``: with ``t = b i - sh``, ``|m| >> t`` when ``t >= 0``,
    else ``(|m| mod 2^(b + t)) << -t`` (only the bits that land in the digit are kept, so nothing overflows).
    """
    if m.size == 0 or not np.any(m):
        return []
    mag = np.abs(m)
    sign = np.where(m < 0, -1.0, 1.0)
    mask = (1 << b) - 1
    nl = -(-(int(sh.max()) + 53) // b)
    out = []
    for i in range(nl):
        t = b * i - sh
        right = (mag >> np.clip(t, 0, 63)) & mask
        keep = np.clip(b + t, 0, 63)
        left = ((mag & ((np.int64(1) << keep) - 1)) << np.clip(-t, 0, 63)) & mask
        d = np.where(t >= 0, np.where(t < 63, right, 0), np.where(-t < b, left, 0))
        out.append(d.astype(np.float64) * sign)
    return out


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
    """Exact value of a float64 array (finite entries) as a :class:`Q` (in dyadic form: no Python ints yet).

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
    if emin >= 0:
        return Q(_dyadic_ints(mi, sh).reshape(a.shape) * (1 << emin), 1)
    return Q(None, 1 << (-emin), dyadic=(mi.reshape(a.shape), sh.reshape(a.shape)))


def words_to_ints(words: np.ndarray) -> np.ndarray:
    """Rows of little-endian two's complement 64-bit words -> object array of Python ints.

    Upper words that only repeat the sign are dropped first; then one word is read as int64, two
    words with three object-array operations, wider rows with one ``int.from_bytes`` each (measured
    the fastest from three words on).
    """
    words = np.ascontiguousarray(words, dtype=np.uint64)
    N, W = words.shape
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    used = W
    while used > 1 and np.array_equal(words[:, used - 1],
                                      np.where(words[:, used - 2].view(np.int64) < 0, ones, np.uint64(0))):
        used -= 1
    if used == 1:
        return words[:, 0].view(np.int64).astype(object)
    if used == 2:
        return (words[:, 1].view(np.int64).astype(object) << 64) | words[:, 0].astype(object)
    step = 8 * used
    buf = memoryview(np.ascontiguousarray(words[:, :used]).view("<u8").tobytes())
    fb = int.from_bytes
    out = np.empty(N, dtype=object)
    out[:] = [fb(buf[i:i + step], "little", signed=True) for i in range(0, N * step, step)]
    return out


def ints_to_words(mag: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative Python ints (object array) -> ``(N, W)`` little-endian uint64 words (vectorised up to two words)."""
    W = max(1, -(-bits // 64))
    flat = mag.ravel()
    out = np.empty((flat.size, W), dtype=np.uint64)
    if bits <= 63:
        out[:, 0] = flat.astype(np.int64).view(np.uint64)
        return out
    if W > 2:  # wide: one int.to_bytes per entry beats 2 W object-array operations
        nb = 8 * W
        buf = b"".join([int(v).to_bytes(nb, "little") for v in flat])
        return np.frombuffer(buf, dtype="<u8").reshape(flat.size, W).copy()
    mask = (1 << 64) - 1
    out[:, 0] = (flat & mask).astype(np.uint64)
    if W == 2:
        out[:, 1] = (flat >> 64).astype(np.uint64)
    return out


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


def imatmul(A: np.ndarray, B: np.ndarray, *, min_work: int = 300_000, LA: list[np.ndarray] | None = None,
            LB: list[np.ndarray] | None = None) -> np.ndarray:
    """Exact product of integer matrices (object or int64 arrays) as an object array.

    ``LA`` / ``LB``: the limbs of ``A`` / ``B`` in base ``2^b`` with ``b = limb_bits(k)`` when already known.
    """
    n, k = A.shape
    k2, m = B.shape
    if k != k2:
        raise ValueError(f"imatmul: shapes {A.shape} and {B.shape} do not match")
    if n == 0 or m == 0 or k == 0:
        return zeros((n, m))
    if n * k * m < min_work or min(n, m) <= 2 or k <= 4 or limb_bits(k) < 8:
        A = A if A.dtype == object else as_object(A)
        B = B if B.dtype == object else as_object(B)
        return A.dot(B) if k else zeros((n, m))
    b = limb_bits(k)
    if LA is None:
        ba = max_bits(A)
        LA = _limbs(A, b, ba) if ba else []
    if LB is None:
        bb = max_bits(B)
        LB = _limbs(B, b, bb) if bb else []
    return _limb_product(LA, LB, n, m, b)


def _limb_product(LA: list[np.ndarray], LB: list[np.ndarray], n: int, m: int, b: int) -> np.ndarray:
    """``(sum_i LA_i 2^(b i)) @ (sum_j LB_j 2^(b j))`` exactly (float64 BLAS per limb pair, int64 carries)."""
    if not LA or not LB:
        return zeros((n, m))
    groups = [np.zeros((n, m), dtype=np.int64) for _ in range(len(LA) + len(LB) - 1)]
    Bcat = np.concatenate(LB, axis=1) if len(LB) > 1 else LB[0]
    for i, a in enumerate(LA):
        prod = a @ Bcat  # exact: every partial sum is an integer below 2^53
        for j in range(len(LB)):
            groups[i + j] += prod[:, j * m:(j + 1) * m].astype(np.int64)
    return _combine(groups, b)


def limb_bits(k: int) -> int:
    """Limb width for an inner dimension ``k``: ``k * 2^(2b) <= 2^53``."""
    return (53 - k.bit_length()) // 2


def qmatmul(a: Q, b: Q) -> Q:
    """Exact product of two rational matrices; limbs of either factor are cached on it for reuse."""
    n, k = a.shape
    m = b.shape[1]
    big = n * k * m >= 300_000 and min(n, m) > 2 and k > 4 and limb_bits(k) >= 8
    if not big:
        return Q(imatmul(a.num, b.num), a.den * b.den)
    w = limb_bits(k)
    return Q(_limb_product(a.limbs(w), b.limbs(w), n, m, w), a.den * b.den)
