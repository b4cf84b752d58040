"""How many examples x repetitions the gate needs to see a drop: the statistics of `plan`.

Pure (numbers and small frames in, dataclasses out; no warehouse): the CLI face reads the
history through `evalkeeper.warehouse.planning` and calls `plan_evaluator` per evaluator.

The test planned for is the gate's (`evalkeeper.analysis.stats`): repetitions are averaged
per example, ``d_i = candidate_i - baseline_i``, and a pass/fail evaluator's ``__all__``
cell is a regression when the two-sided exact sign test (McNemar's exact test at one
repetition) on the examples whose rate moved has ``p < alpha`` and the mean drop is larger
than ``settings.analysis.tolerance``.

The model (the formulas, so a reader can check them):

* **Examples.** Example ``i`` passes each repetition with its own probability ``p_i``,
  drawn from a Beta distribution with mean ``p`` (the pass rate) and intraclass correlation
  ``rho`` (the correlation between two repetitions of one example):
  ``a + b = 1/rho - 1`` (the beta-binomial model; ``rho = 0``: every example alike).
  Repetitions are independent given ``p_i``.
* **The drop**, of one of two shapes (the mean falls by exactly ``delta`` in both;
  baseline and candidate are independent given ``p_i``):

  - *diffuse*: the candidate passes example ``i`` with ``q_i = p_i * (1 - delta / p)``:
    every example loses the same share of its pass probability;
  - *concentrated*: a share ``delta / p`` of the examples, chosen at random, break
    (``q_i = 0``); the others keep ``q_i = p_i``.

  At one repetition the two give the same sign-test power (both have ``pi_w - pi_b =
  delta`` and the same discordance); with repetitions they part: a diffuse drop lets every
  example move towards worse, while under a concentrated one the unchanged examples move
  both ways more often (the sign test counts any change of an averaged rate), so extra
  repetitions can *cost* examples. The plan does not know the shape: it takes the one that
  needs more examples and shows both.
* **The test's power.** With ``R`` repetitions, ``B ~ Bin(R, p_i)``, ``C ~ Bin(R, q_i)``;
  an example is "worse" when ``C < B`` and "better" when ``C > B``. Their probabilities
  ``pi_w``, ``pi_b`` integrate a polynomial of degree ``2R`` in ``p_i`` against the Beta
  density, which Gauss-Jacobi quadrature with ``R + 2`` nodes does exactly (Golub and
  Welsch 1969, "Calculation of Gauss quadrature rules", via `scipy.special.roots_jacobi`). With ``n``
  examples the number that moved is ``D ~ Bin(n, pi_w + pi_b)`` and, given ``D``, the worse
  ones are ``Bin(D, pi_w / (pi_w + pi_b))``; the two-sided exact sign test rejects towards
  "worse" when ``2 * F(better; D, 1/2) < alpha``. Summing over ``D`` gives the exact power
  (`power_exact`). The closed form (`power_normal`, `n_normal`), the search's starting
  point, is the normal approximation of Connor (1987, "Sample size for testing
  differences in proportions for the paired-sample design", Biometrics 43:207-211):
  ``n = ((z_{1-a/2} sqrt(pi_d) + z_{power} sqrt(pi_d - mu^2)) / mu)^2`` with
  ``pi_d = pi_w + pi_b``, ``mu = pi_w - pi_b``: a one-sample z-test of the mean sign with
  the null's variance for the critical value and the alternative's for the power; where
  the two coincide (``mu^2 << pi_d``) it is statsmodels' one-sample `NormalIndPower`,
  which `tests/analysis/test_planner.py` checks. The planned ``n`` is the smallest with
  exact power at least the asked one (the exact power is saw-toothed in ``n``).
* **Tolerance.** When ``tolerance > 0`` the drop must also exceed it: the power is
  multiplied by ``P(mean(d) < -tolerance)`` (normal, with ``Var(d_i)`` from the model). The
  two events go together, so the product is a lower bound (conservative).

Approximations, said where the plan is printed:

* Multiplicity: the gate adjusts the p-values of every evaluator x category cell together
  by Benjamini-Hochberg (Benjamini and Hochberg 1995, "Controlling the false discovery
  rate", JRSS B 57:289-300). The plan tests each evaluator's
  ``__all__`` cell at ``alpha / m`` with ``m`` the cells (Bonferroni): BH rejects whenever
  Bonferroni does, so this is a lower bound on the power, and close to it when the drop
  shows in that one cell (the category cells, with a fraction of the examples, seldom
  reach significance first: `benchmarks/planner.py` measures 0.54 power for a plan made
  for the cell alone among ten cells).
* "Worse" with the p-value under alpha is taken as a regression; the gate also needs the
  mean difference below ``-tolerance`` (handled as above; at tolerance 0 a rejection
  towards worse has a negative mean in all but freak samples).
* The smoke suite is a stratified subset with every critical example; its power is
  computed as if it were a random sample with the dataset's pass rate and correlation.

Estimating the model from the history (`estimate_icc`, `icc_from_discordance`):

* ``p``: the pass rate of the latest run that scored the evaluator.
* ``rho`` from repetitions: the one-way ANOVA estimator for binary data, unbalanced
  (Fleiss 1981, "Statistical Methods for Rates and Proportions"; Ridout, Demétrio and
  Firth 1999, "Estimating intraclass correlation for binary data", Biometrics
  55:137-148), computed per run with repetitions and pooled weighted by the examples it
  repeated (runs differ in pass rate): groups are examples with ``k_i`` scored
  repetitions and ``y_i`` passes,
  ``MSB = (sum y_i^2/k_i - Y^2/N) / (G - 1)``, ``MSW = (Y - sum y_i^2/k_i) / (N - G)``,
  ``k0 = (N - sum k_i^2 / N) / (G - 1)``, ``rho = (MSB - MSW) / (MSB + (k0 - 1) MSW)``,
  clipped to [0, 1].
* ``rho`` from paired runs of the same target (no repetitions): two runs of one target are
  two repetitions, so the share of examples whose first repetition's outcome differs is
  ``E[2 p_i (1 - p_i)] = 2 p (1 - p) (1 - rho)``, hence
  ``rho = 1 - discordance / (2 p (1 - p))``.
* Neither: ``rho`` is unknown. One repetition is then planned with ``rho = 0``, which is
  conservative there (it gives the most discordant examples, so the most examples needed);
  more repetitions are `inconclusive` (their benefit depends on ``rho``): run the suite with
  ``--repetitions 2`` once to measure it.

Check by simulation: `benchmarks/planner.py` draws data from this model (both shapes,
several cells), runs `evalkeeper.analysis.stats.paired_comparison` and `decide` on it
(`simulate_power`), and compares the share of regressions with the planned power.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from evalkeeper.analysis.stats import z_value
from evalkeeper.errors import InputError

FloatArray = npt.NDArray[np.float64]
REPETITION_OPTIONS = (1, 2, 3, 5)
MAX_EXAMPLES = 200_000
"""A plan that needs more examples than this says so instead of searching further."""

IccSource = Literal["repetitions", "discordance", "assumed", "none"]
Shape = Literal["diffuse", "concentrated"]
SHAPES: tuple[Shape, ...] = ("diffuse", "concentrated")


# -- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExampleModel:
    """Per-example pass probabilities ~ Beta with mean `pass_rate` and correlation `icc`."""

    pass_rate: float
    icc: float

    def beta(self) -> tuple[float, float] | None:
        """(a, b) of the Beta distribution, or None when every example is alike."""
        p, rho = self.pass_rate, self.icc
        if rho <= 0 or p <= 0 or p >= 1:
            return None
        total = 1.0 / min(rho, 1 - 1e-9) - 1.0
        return p * total, (1 - p) * total

    def nodes(self, degree: int) -> tuple[FloatArray, FloatArray]:
        """Points and weights integrating any polynomial of `degree` against the model's
        distribution of ``p_i`` exactly (Gauss-Jacobi on [0, 1])."""
        ab = self.beta()
        if ab is None:
            return np.array([self.pass_rate]), np.array([1.0])
        return _jacobi_nodes(degree // 2 + 1, *ab)

    def draw(self, rng: np.random.Generator, n: int) -> FloatArray:
        """`n` examples' pass probabilities (for simulations)."""
        ab = self.beta()
        if ab is None:
            return np.full(n, self.pass_rate)
        return rng.beta(ab[0], ab[1], size=n)


@functools.lru_cache(maxsize=256)
def _jacobi_nodes(k: int, a: float, b: float) -> tuple[FloatArray, FloatArray]:
    from scipy import special

    # weight (1 - x)^(b - 1) (1 + x)^(a - 1) on [-1, 1]; x -> (1 + x) / 2 is Beta(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):  # scipy's k == 1 branch
        x, w = special.roots_jacobi(k, b - 1.0, a - 1.0)
    return (1.0 + x) / 2.0, w / w.sum()


def shrink(pass_rate: float, drop: float) -> float:
    """The factor every example's pass probability is multiplied by: ``1 - drop / p``."""
    return 1.0 - drop / pass_rate


@dataclass(frozen=True)
class SignProbabilities:
    """Per example: P(candidate's mean < baseline's) and P(>), and the moments of ``d_i``."""

    worse: float
    better: float
    mean_d: float
    var_d: float


def sign_probabilities(
    model: ExampleModel, drop: float, repetitions: int, shape: Shape = "diffuse"
) -> SignProbabilities:
    """`pi_w`, `pi_b` and ``E[d], Var(d)`` for one example with `repetitions` per side,
    the drop of the given `shape` (see the module docstring)."""
    from scipy import stats as st

    r = repetitions
    ps, ws = model.nodes(2 * r + 2)
    ks = np.arange(r + 1)
    pmf_b = st.binom.pmf(ks[None, :], r, ps[:, None])
    if shape == "concentrated":
        kappa = drop / model.pass_rate  # the share of examples that break
        same = np.sum(pmf_b * pmf_b, axis=1)  # P(C = B) for an unchanged example
        moved = float(ws @ (1 - same))
        worse = kappa * float(ws @ (1 - pmf_b[:, 0])) + (1 - kappa) * moved / 2
        better = (1 - kappa) * moved / 2
        second = kappa * (ws @ (p_var(ps) / r + ps * ps)) + (1 - kappa) * (ws @ (2 * p_var(ps) / r))
        return SignProbabilities(worse, better, -drop, float(second) - drop**2)
    s = shrink(model.pass_rate, drop)
    pmf_c = st.binom.pmf(ks[None, :], r, (s * ps)[:, None])
    cdf_c = np.cumsum(pmf_c, axis=1)
    below = np.concatenate([np.zeros((ps.size, 1)), cdf_c[:, :-1]], axis=1)  # P(C < k)
    worse = float(ws @ np.sum(pmf_b * below, axis=1))
    above = 1.0 - cdf_c  # P(C > k)
    better = float(ws @ np.sum(pmf_b * above, axis=1))
    q = s * ps
    mean_d = float(ws @ (q - ps))
    second = ws @ ((q * (1 - q) + p_var(ps)) / r + (q - ps) ** 2)
    return SignProbabilities(worse, better, mean_d, float(second) - mean_d**2)


def p_var(p: FloatArray) -> FloatArray:
    return p * (1 - p)


# -- power and size -------------------------------------------------------------------------


def power_normal(n: int, probs: SignProbabilities, alpha: float) -> float:
    """Connor's (1987) normal approximation of the sign test's power towards "worse"."""
    d = probs.worse + probs.better
    mu = probs.worse - probs.better
    if n <= 0 or d <= 0 or mu <= 0:
        return 0.0
    from statistics import NormalDist

    z = z_value(1 - alpha / 2)
    sd1 = math.sqrt(max(d - mu * mu, 1e-300))
    return NormalDist().cdf((mu * math.sqrt(n) - z * math.sqrt(d)) / sd1)


def n_normal(probs: SignProbabilities, power: float, alpha: float) -> float:
    """Connor's (1987) sample size (not rounded); inf when nothing moves towards worse."""
    d = probs.worse + probs.better
    mu = probs.worse - probs.better
    if d <= 0 or mu <= 0:
        return math.inf
    z_a, z_b = z_value(1 - alpha / 2), z_value(power)
    return ((z_a * math.sqrt(d) + z_b * math.sqrt(max(d - mu * mu, 0.0))) / mu) ** 2


def power_exact(n: int, probs: SignProbabilities, alpha: float) -> float:
    """P(the two-sided exact sign test rejects towards "worse") with `n` examples."""
    from scipy import stats as st

    d = probs.worse + probs.better
    if n <= 0 or d <= 0:
        return 0.0
    theta = min(probs.worse / d, 1.0)
    d = min(d, 1.0)
    # only the counts of moved examples within 12 sd of the mean carry any probability
    # (the rest < 1e-30): O(sqrt(n)) terms, not O(n)
    spread = 12 * math.sqrt(n * d * (1 - d)) + 10
    first = max(0, math.floor(n * d - spread))
    moved = np.arange(first, min(n, math.ceil(n * d + spread)) + 1)
    p_moved = st.binom.pmf(moved, n, d)
    # the largest count of "better" with 2 * F(better; D, 1/2) < alpha (-1: none)
    c = st.binom.ppf(alpha / 2, moved, 0.5) - 1
    c = np.where(st.binom.cdf(c, moved, 0.5) < alpha / 2, c, c - 1)
    need = moved - c  # worse >= D - c, i.e. better <= c
    p_reject = np.where(c >= 0, st.binom.sf(need - 1, moved, theta), 0.0)
    return float(np.clip(p_moved @ p_reject, 0.0, 1.0))


def tolerance_factor(n: int, probs: SignProbabilities, tolerance: float) -> float:
    """P(mean(d) < -tolerance), normal; 1 when tolerance is 0 (see the module docstring)."""
    if tolerance <= 0:
        return 1.0
    if n <= 0 or probs.var_d <= 0:
        return 1.0 if probs.mean_d < -tolerance else 0.0
    from statistics import NormalDist

    return NormalDist().cdf((-tolerance - probs.mean_d) / math.sqrt(probs.var_d / n))


def gate_power(n: int, probs: SignProbabilities, *, alpha: float, tolerance: float = 0.0) -> float:
    """The planned test's power with `n` examples (exact sign test x tolerance factor)."""
    return power_exact(n, probs, alpha) * tolerance_factor(n, probs, tolerance)


def examples_needed(
    probs: SignProbabilities, *, power: float, alpha: float, tolerance: float = 0.0
) -> int | None:
    """The smallest number of examples whose `gate_power` reaches `power` (None: more than
    `MAX_EXAMPLES`, or never).

    The exact power is saw-toothed in ``n`` (the binomial test's rejection region moves in
    steps), so: bracket a size that reaches it by doubling from Connor's approximation,
    bisect, then look `SCAN` sizes below the one found for a smaller one that reaches it."""

    def reaches(n: int) -> bool:
        return gate_power(n, probs, alpha=alpha, tolerance=tolerance) >= power

    guess = n_normal(probs, power, alpha)
    if not math.isfinite(guess) or guess > MAX_EXAMPLES:
        return None
    lo, hi = 0, max(1, int(guess * 0.7))
    while not reaches(hi):
        lo, hi = hi, hi * 2
        if lo > MAX_EXAMPLES:
            return None
    while hi - lo > 1:  # reaches(hi); lo does not (or is 0)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    for n in range(max(1, hi - SCAN), hi):
        if reaches(n):
            return n
    return hi if hi <= MAX_EXAMPLES else None


SCAN = 40


def worst_power(
    n: int, model: ExampleModel, drop: float, repetitions: int, *, alpha: float, tolerance: float
) -> tuple[float, Shape]:
    """The lower `gate_power` of the two drop shapes at `n` examples, and that shape."""
    powers = {
        shape: gate_power(
            n,
            sign_probabilities(model, drop, repetitions, shape),
            alpha=alpha,
            tolerance=tolerance,
        )
        for shape in SHAPES
    }
    shape = min(SHAPES, key=lambda s: powers[s])
    return powers[shape], shape


@dataclass(frozen=True)
class Size:
    examples: int | None
    power: float | None
    shape: Shape | None
    by_shape: dict[str, int | None]


def plan_size(
    model: ExampleModel,
    drop: float,
    repetitions: int,
    *,
    power: float,
    alpha: float,
    tolerance: float = 0.0,
) -> Size:
    """The examples needed for either shape of the drop (the larger), with the lower power
    of the two at that size (at least `power`) and the shape it is planned for."""
    needed: dict[Shape, int] = {}
    for shape in SHAPES:
        probs = sign_probabilities(model, drop, repetitions, shape)
        n = examples_needed(probs, power=power, alpha=alpha, tolerance=tolerance)
        if n is None:
            by: dict[str, int | None] = {k: v for k, v in needed.items()}
            by[shape] = None
            return Size(None, None, shape, by)
        needed[shape] = n
    governing = max(needed, key=needed.__getitem__)
    n = needed[governing]
    got = 0.0
    for _ in range(SCAN):  # the other shape's saw-tooth may dip just below at this size
        got, _weaker = worst_power(n, model, drop, repetitions, alpha=alpha, tolerance=tolerance)
        if got >= power:
            break
        n += 1
    return Size(n, got, governing, {k: v for k, v in needed.items()})


# -- estimates from the history -------------------------------------------------------------


@dataclass(frozen=True)
class Icc:
    value: float | None
    source: IccSource
    groups: int
    """Groups with at least two repetitions (repetitions) or examples paired (discordance)."""


def estimate_icc(k: npt.ArrayLike, y: npt.ArrayLike) -> Icc:
    """One-way ANOVA intraclass correlation of binary outcomes (see the module docstring):
    `k` scored repetitions and `y` passes per group. None when no group repeats."""
    k_arr = np.asarray(k, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    keep = k_arr > 0
    k_arr, y_arr = k_arr[keep], y_arr[keep]
    repeated = int(np.sum(k_arr >= 2))
    g, n = k_arr.size, float(k_arr.sum())
    if repeated < 2 or g < 2 or n - g <= 0:
        return Icc(None, "none", repeated)
    total = float(y_arr.sum())
    between = float(np.sum(y_arr * y_arr / k_arr))
    msb = (between - total * total / n) / (g - 1)
    msw = (total - between) / (n - g)
    k0 = (n - float(np.sum(k_arr * k_arr)) / n) / (g - 1)
    denom = msb + (k0 - 1) * msw
    if denom <= 0:
        return Icc(None, "none", repeated)  # every row passed (or failed): nothing varies
    return Icc(float(np.clip((msb - msw) / denom, 0.0, 1.0)), "repetitions", repeated)


def icc_from_discordance(discordance: float, pass_rate: float, pairs: int) -> Icc:
    """``rho = 1 - discordance / (2 p (1 - p))`` (two runs of one target as repetitions);
    `pairs` counts the examples paired."""
    var = pass_rate * (1 - pass_rate)
    if pairs < 1 or var <= 0:
        return Icc(None, "none", pairs)
    return Icc(float(np.clip(1.0 - discordance / (2 * var), 0.0, 1.0)), "discordance", pairs)


def weighted_icc(estimates: list[Icc]) -> Icc:
    """Per-run estimates pooled, weighted by their groups (runs differ in pass rate: one
    ANOVA over all of them would count that as between-example variance)."""
    found = [e for e in estimates if e.value is not None]
    if not found:
        return Icc(None, "none", sum(e.groups for e in estimates))
    total = sum(e.groups for e in found)
    value = sum(float(e.value or 0.0) * e.groups for e in found) / total
    return Icc(value, found[0].source, total)


# -- the plan of one evaluator --------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    repetitions: int
    examples: int | None
    """Examples needed; None when inconclusive or more than `MAX_EXAMPLES`."""
    power: float | None
    """The exact power at `examples` (at least the asked one)."""
    judge_calls: int | None
    """Judge calls per run of that size (None: inconclusive)."""
    cost_usd: float | None
    """Dollars per run; None when the cost is unknown (never 0 for unknown)."""
    status: Literal["ok", "inconclusive", "too_large"]
    note: str = ""
    shape: Shape | None = None
    """The drop's shape that needs the most examples (the one the size is planned for)."""
    by_shape: dict[str, int | None] = field(default_factory=dict)
    """The examples each shape of the drop alone would need."""


@dataclass(frozen=True)
class SuitePower:
    suite: str
    examples: int
    repetitions: int
    power: float | None
    note: str = ""


@dataclass(frozen=True)
class Usage:
    """Judge calls per example and repetition, and dollars per call (None: unknown)."""

    calls_per_example: float
    cost_per_call_usd: float | None
    source: str


@dataclass(frozen=True)
class EvaluatorPlan:
    evaluator: str
    pass_rate: float | None
    icc: Icc
    discordance: float | None
    discordance_pairs: int
    discordance_model: float | None
    """What the model predicts for it, ``2 p (1 - p) (1 - rho)``: a check of the model."""
    usage: Usage | None
    options: list[Option]
    suites: list[SuitePower]
    status: Literal["ok", "assumed", "inconclusive"]
    notes: list[str] = field(default_factory=list)


def _cost(calls: int | None, usage: Usage | None) -> float | None:
    if usage is None:  # not a judge: no call, nothing to pay
        return 0.0
    if calls is None or usage.cost_per_call_usd is None:
        return None
    return calls * usage.cost_per_call_usd


def _calls(examples: int, repetitions: int, usage: Usage | None) -> int | None:
    if usage is None:
        return 0
    return round(examples * repetitions * usage.calls_per_example)


def plan_evaluator(
    evaluator: str,
    *,
    pass_rate: float | None,
    icc: Icc,
    discordance: float | None,
    discordance_pairs: int,
    usage: Usage | None,
    detect: float,
    power: float,
    alpha: float,
    tolerance: float,
    suites: list[tuple[str, int, int]],
    fix: str,
    cells: int = 1,
    options: tuple[int, ...] = REPETITION_OPTIONS,
) -> EvaluatorPlan:
    """The plan for one pass/fail evaluator (see the module docstring). `suites` are
    (name, examples, repetitions) whose power to report; `fix` says how to get the history
    the plan lacks (a command line); `cells` is how many cells the gate adjusts together
    (the test is planned at ``alpha / cells``)."""
    notes: list[str] = []
    model_disc = (
        2 * pass_rate * (1 - pass_rate) * (1 - icc.value)
        if pass_rate is not None and icc.value is not None
        else None
    )

    def done(
        options: list[Option],
        suite_power: list[SuitePower],
        status: Literal["ok", "assumed", "inconclusive"],
    ) -> EvaluatorPlan:
        return EvaluatorPlan(
            evaluator=evaluator,
            pass_rate=pass_rate,
            icc=icc,
            discordance=discordance,
            discordance_pairs=discordance_pairs,
            discordance_model=model_disc,
            usage=usage,
            options=options,
            suites=suite_power,
            status=status,
            notes=notes,
        )

    if pass_rate is None:
        notes.append(f"inconclusive: no scored run of this evaluator; {fix}")
        return done(
            [_inconclusive(r, "no pass rate") for r in options],
            [SuitePower(s, n, r, None, "no pass rate") for s, n, r in suites],
            "inconclusive",
        )
    if detect >= pass_rate:
        notes.append(
            f"inconclusive: the pass rate is {pass_rate:.3f}, so it cannot drop by {detect:g}; "
            "ask for a smaller --detect"
        )
        return done(
            [_inconclusive(r, "drop above the pass rate") for r in options],
            [SuitePower(s, n, r, None, "drop above the pass rate") for s, n, r in suites],
            "inconclusive",
        )
    status: Literal["ok", "assumed", "inconclusive"] = "ok"
    rho = icc.value
    if rho is None and pass_rate >= 1.0:
        rho = 0.0  # every example passes: nothing to correlate, and the model needs none
    if rho is None:
        status = "assumed"
        notes.append(
            "assumed: no repetitions and no two runs of one target, so the correlation "
            "between repetitions is unknown; 1 repetition is planned with none (the "
            f"conservative case), more are inconclusive: {fix}"
        )
    if pass_rate >= 1.0:
        notes.append(
            "every scored row passed in the latest run: the plan takes that rate as exact "
            "(optimistic for a small run)"
        )
    plans: list[Option] = []
    level = alpha / cells
    for r in options:
        if rho is None and r > 1:
            plans.append(_inconclusive(r, "correlation unknown"))
            continue
        size = plan_size(
            ExampleModel(pass_rate, rho or 0.0),
            detect,
            r,
            power=power,
            alpha=level,
            tolerance=tolerance,
        )
        if size.examples is None:
            plans.append(
                Option(r, None, None, None, None, "too_large", f"more than {MAX_EXAMPLES:,}")
            )
            continue
        calls = _calls(size.examples, r, usage)
        plans.append(
            Option(
                repetitions=r,
                examples=size.examples,
                power=size.power,
                judge_calls=calls,
                cost_usd=_cost(calls, usage),
                status="ok",
                shape=size.shape,
                by_shape=size.by_shape,
            )
        )
    suite_power = []
    for name, n, r in suites:
        if rho is None and r > 1:
            suite_power.append(SuitePower(name, n, r, None, "correlation unknown"))
            continue
        got, shape = worst_power(
            n, ExampleModel(pass_rate, rho or 0.0), detect, r, alpha=level, tolerance=tolerance
        )
        suite_power.append(SuitePower(name, n, r, got, f"{shape} drop"))
    return done(plans, suite_power, status)


def _inconclusive(repetitions: int, why: str) -> Option:
    return Option(repetitions, None, None, None, None, "inconclusive", why)


# -- the plan of a dataset, from its history ------------------------------------------------


class PlanError(InputError, ValueError):
    """`plan` was asked something it cannot answer: an unknown dataset or evaluator, or a
    drop, power or alpha out of range. The message names the fix."""


APPROXIMATIONS = [
    "the gate adjusts the p-values of every evaluator x category cell together by "
    "Benjamini-Hochberg; the plan tests each evaluator's __all__ cell at alpha / cells "
    "(Bonferroni), a lower bound on the power under Benjamini-Hochberg that is close when "
    "the drop shows in one cell (--cells 1: that cell alone)",
    "the drop's shape is unknown: every example a little worse (diffuse) or some examples "
    "broken (concentrated); the size is planned for the shape that needs more examples, "
    "both are shown",
    "the smoke suite's power treats it as a random sample of the dataset",
    "judge calls and dollars assume no cache hit (a changed target's answers are new)",
]


@dataclass(frozen=True)
class Plan:
    dataset: str
    detect: float
    power: float
    alpha: float
    tolerance: float
    cells: int
    """The cells the gate adjusts together; each is planned at ``alpha / cells``."""
    runs: list[dict[str, object]]
    """The runs the estimates come from (oldest first): id, suite, started, repetitions."""
    evaluators: list[EvaluatorPlan]
    notes: list[str]
    approximations: list[str] = field(default_factory=lambda: list(APPROXIMATIONS))

    @property
    def status(self) -> Literal["ok", "assumed", "inconclusive"]:
        states = {e.status for e in self.evaluators}
        if not self.evaluators or states == {"inconclusive"}:
            return "inconclusive"
        return "assumed" if states - {"ok"} else "ok"


def check_request(*, detect: float, power: float, alpha: float, cells: int = 1) -> None:
    """Raise `PlanError` for a drop, power, alpha or cell count out of range."""
    if cells < 1:
        raise PlanError(f"--cells {cells}: at least 1 (the cells the gate adjusts together)")
    if not 0 < detect < 1:
        raise PlanError(
            f"--detect {detect:g}: a drop in pass rate between 0 and 1 (e.g. 0.05 for five points)"
        )
    if not 0 < alpha < 1:
        raise PlanError(f"--alpha {alpha:g}: a significance level between 0 and 1 (e.g. 0.05)")
    if not alpha / 2 < power < 1:
        raise PlanError(
            f"--power {power:g}: a probability between alpha/2 ({alpha / 2:g}) and 1 (e.g. 0.8)"
        )


def _pin(row: dict[str, object]) -> tuple[object, ...]:
    return tuple(row[c] for c in ("target_spec", "agent_version", "model", "git_commit"))


def _discordance(
    runs: pl.DataFrame, groups: pl.DataFrame
) -> tuple[float | None, int, int, float | None]:
    """(discordance, run pairs, examples paired, their pass rate) over consecutive runs of
    one target pin, on each example's first scored repetition."""
    by_pin: dict[tuple[object, ...], list[str]] = {}
    for row in runs.iter_rows(named=True):
        by_pin.setdefault(_pin(row), []).append(str(row["experiment_id"]))
    differ = paired = pairs = passes = 0
    for ids in by_pin.values():
        for a, b in itertools.pairwise(ids):
            left = groups.filter(pl.col("experiment_id") == a).select("example_id", "first")
            right = groups.filter(pl.col("experiment_id") == b).select("example_id", "first")
            both = left.join(right, on="example_id", suffix="_b")
            if not both.height:
                continue
            pairs += 1
            paired += both.height
            differ += int((both["first"] != both["first_b"]).sum())
            passes += int(both["first"].sum()) + int(both["first_b"].sum())
    if not paired:
        return None, 0, 0, None
    return differ / paired, pairs, paired, passes / (2 * paired)


def _usage(evaluator: str, runs: pl.DataFrame, usage: pl.DataFrame) -> Usage | None:
    """Judge calls per example-repetition and dollars per fresh call, from the latest run
    with calls of this judge (None: the evaluator made no judge call: not a judge)."""
    mine = usage.filter(pl.col("judge") == evaluator)
    if not mine.height:
        return None
    order = {str(r): i for i, r in enumerate(runs["experiment_id"])}
    latest = max(mine.iter_rows(named=True), key=lambda r: order.get(str(r["experiment_id"]), -1))
    run = runs.filter(pl.col("experiment_id") == latest["experiment_id"]).row(0, named=True)
    rows = int(run["n_examples"]) * int(run["repetitions"])
    priced = int(latest["fresh"]) - int(latest["unpriced"])
    cost = float(latest["cost_usd"]) / priced if priced > 0 else None
    source = f"run {latest['experiment_id']}: {latest['votes']} calls for {rows} rows"
    if cost is None:
        source += f"; no priced call ({latest['models']}): cost unknown"
    elif latest["unpriced"]:
        source += f"; {latest['unpriced']} call(s) without a price, priced as the others"
    return Usage(int(latest["votes"]) / rows if rows else 0.0, cost, source)


def plan_dataset(
    dataset: str,
    *,
    runs: pl.DataFrame,
    groups: pl.DataFrame,
    usage: pl.DataFrame,
    value_evaluators: list[str],
    suites: list[tuple[str, int, int]],
    detect: float,
    power: float,
    alpha: float,
    tolerance: float,
    cells: int = 1,
    evaluator: str | None = None,
) -> Plan:
    """The plan from a dataset's history (the frames of `evalkeeper.warehouse.planning`)."""
    check_request(detect=detect, power=power, alpha=alpha, cells=cells)
    fix = f"run `evalkeeper run --dataset {dataset} --suite full --repetitions 2`"
    notes: list[str] = []
    run_list = [
        {
            "experiment_id": r["experiment_id"],
            "suite": r["suite"],
            "started_at": str(r["started_at"]),
            "repetitions": int(r["repetitions"]),
            "n_examples": int(r["n_examples"]),
        }
        for r in runs.iter_rows(named=True)
    ]
    names = sorted(set(groups["evaluator"].to_list())) if groups.height else []
    if evaluator is not None:
        if evaluator in value_evaluators:
            raise PlanError(
                f"--evaluator {evaluator!r} scores a value, not pass/fail: the gate tests it "
                "with Wilcoxon, which `plan` does not plan for; pick one of "
                f"{', '.join(names) or 'none'}"
            )
        if evaluator not in names and runs.height:
            raise PlanError(
                f"--evaluator {evaluator!r}: no pass/fail score of it in the latest runs of "
                f"{dataset!r}; pick one of {', '.join(names) or 'none'}"
            )
        names = [evaluator]
    if value_evaluators and evaluator is None:
        notes.append(
            "not planned (they score a value, tested with Wilcoxon): " + ", ".join(value_evaluators)
        )
    if not runs.height:
        notes.append(f"inconclusive: no completed run of {dataset!r} in the warehouse; {fix}")
        return Plan(dataset, detect, power, alpha, tolerance, cells, run_list, [], notes)
    plans = []
    for ev in names:
        mine = groups.filter(pl.col("evaluator") == ev)
        seen = [r for r in runs["experiment_id"] if r in set(mine["experiment_id"])]
        latest = mine.filter(pl.col("experiment_id") == seen[-1])
        pass_rate = int(latest["y"].sum()) / int(latest["k"].sum())
        icc = weighted_icc(
            [
                estimate_icc(part["k"].to_numpy(), part["y"].to_numpy())
                for part in mine.partition_by("experiment_id")
            ]
        )
        disc, pairs, paired, disc_rate = _discordance(runs, mine)
        if icc.value is None and disc is not None and disc_rate is not None:
            icc = icc_from_discordance(disc, disc_rate, paired)
        plans.append(
            plan_evaluator(
                ev,
                pass_rate=pass_rate,
                icc=icc,
                discordance=disc,
                discordance_pairs=pairs,
                usage=_usage(ev, runs, usage),
                detect=detect,
                power=power,
                alpha=alpha,
                tolerance=tolerance,
                suites=suites,
                fix=fix,
                cells=cells,
            )
        )
        if plans[-1].pass_rate is not None:
            plans[-1].notes.insert(0, f"pass rate from run {seen[-1]}")
    return Plan(dataset, detect, power, alpha, tolerance, cells, run_list, plans, notes)


# -- simulation (the check; used by benchmarks/planner.py and the tests) ----------------------


def simulate_power(
    model: ExampleModel,
    *,
    detect: float,
    examples: int,
    repetitions: int,
    alpha: float,
    tolerance: float,
    replicates: int,
    seed: int,
    shape: Shape = "diffuse",
    cells: int = 1,
) -> float:
    """The share of `replicates` simulated comparisons that the *production* test and
    decision (`stats.paired_comparison`, `stats.decide`) call a regression, data drawn from
    `model` with the candidate `detect` lower (a drop of `shape`). With `cells` > 1 the
    other cells are null (their p-values uniform) and the decision adjusts all of them by
    Benjamini-Hochberg, as the gate does."""
    from evalkeeper.analysis import stats

    rng = np.random.default_rng(seed)
    s = shrink(model.pass_rate, detect)
    hits = 0
    for _ in range(replicates):
        p = model.draw(rng, examples)
        if shape == "concentrated":
            q = np.where(rng.random(examples) < detect / model.pass_rate, 0.0, p)
        else:
            q = s * p
        base = rng.binomial(repetitions, p) / repetitions
        cand = rng.binomial(repetitions, q) / repetitions
        res = stats.paired_comparison(base, cand, binary=True, alpha=alpha)
        evidence = [stats.CellEvidence(diff=res.diff, p_value=res.p_value, mde=res.mde)]
        evidence += [
            stats.CellEvidence(diff=0.0, p_value=float(u), mde=0.0) for u in rng.random(cells - 1)
        ]
        decision = stats.decide(
            evidence, alpha=alpha, tolerance=tolerance, max_error_rate=1.0, max_mde=1.0
        )
        hits += decision.regressed[0]
    return hits / replicates
