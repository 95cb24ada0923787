"""The benchmark's statistics on synthetic runs with known answers: intervals that count seeds and
test-set noise, picks made on validation, verdicts that say "inconclusive" when the interval says so."""

import math

import numpy as np
import pytest

from sktuning.bench import intervals, stats


def run(method, test, validation=None, seed=0, predictions=None, references=None, curve=None, trainable=10):
    return {"method": method, "seed": seed, "lr": 1e-3, "metric": "accuracy", "test": {"accuracy": test},
            "best_validation": test if validation is None else validation, "curve": curve or [(10, test)],
            "trainable": trainable, "total": 1000, "step_seconds": 0.1, "peak_rss_mib": 1.0,
            "settings": {"max_test": 600}, "test_predictions": predictions, "test_references": references}


def test_normal_interval_adds_seed_variance_and_binomial_test_noise():
    from scipy import stats as st

    gap = intervals.normal_interval([0.80, 0.82, 0.84], [0.70, 0.72, 0.74], n_test=600)
    # by hand: seed terms 0.0004 / 3 each (2 df each); test terms .82*.18/600 + .72*.28/600, known (infinite
    # df); Welch-Satterthwaite: df = total^2 / sum(seed term^2 / 2)
    seed, test = 0.0004 / 3, 0.82 * 0.18 / 600 + 0.72 * 0.28 / 600
    df = (2 * seed + test) ** 2 / (2 * seed ** 2 / 2)
    half = st.t.ppf(0.975, df) * math.sqrt(2 * seed + test)
    assert gap.gap == pytest.approx(0.10)
    assert (gap.low, gap.high) == pytest.approx((0.10 - half, 0.10 + half), abs=1e-9)
    assert gap.verdict() == "held" and f"Welch, {df:.1f} df" in gap.how and "n = 600" in gap.how
    # the same means, a noisier method: the interval now reaches below zero
    noisy = intervals.normal_interval([0.70, 0.82, 0.94], [0.70, 0.72, 0.74], n_test=600)
    assert noisy.low < 0 < noisy.high and noisy.verdict() == "inconclusive"
    one = intervals.normal_interval([0.6], [0.8], 600)
    assert one.high < 0 and one.verdict() == "inconclusive" and "one seed" in one.how  # its spread is unknown
    correlation = intervals.normal_interval([0.5, 0.5, 0.5], [0.4, 0.4, 0.4], 600, binomial=False)
    assert correlation.low == correlation.high == pytest.approx(0.1) and "no test-noise term" in correlation.how


def correct_vector(n, wrong, seed=0):
    rng = np.random.default_rng(seed)
    out = np.ones(n, dtype=int)
    out[rng.choice(n, wrong, replace=False)] = 0
    return out


def test_paired_bootstrap_knows_what_two_methods_share():
    """B is A with 60 of 600 examples wrong: a gap of exactly 0.1 whose only noise is which examples the
    test set holds, sd sqrt(.1 * .9 / 600) = 0.0122, by either paired method."""
    references = [0] * 600
    a_pred = [0] * 600
    b_pred = (1 - correct_vector(600, 60)).tolist()
    a = [run("a", 1.0, seed=s, predictions=a_pred, references=references) for s in range(3)]
    b = [run("b", 0.9, seed=s, predictions=b_pred, references=references) for s in range(3)]
    boot = intervals.paired_bootstrap(a, b, "accuracy")
    assert boot.how.startswith("paired bootstrap over 600 test examples")
    assert boot.gap == pytest.approx(0.1)
    assert boot.low == pytest.approx(0.1 - 1.96 * 0.01225, abs=0.006)
    assert boot.high == pytest.approx(0.1 + 1.96 * 0.01225, abs=0.006)
    gap = intervals.gap_interval(a, b, "accuracy", 600)  # the same seeds: paired by seed too
    assert gap.how.startswith("seed-paired: 3 seeds x 600 test examples")
    assert (gap.gap, gap.low, gap.high) == pytest.approx((0.1, 0.1 - 1.964 * 0.01225, 0.1 + 1.964 * 0.01225),
                                                         abs=2e-4)


def test_paired_bootstrap_covers_a_zero_gap_about_95_times_in_100():
    rng = np.random.default_rng(1)
    references = [0] * 300
    covered = 0
    for trial in range(100):
        def method(name):  # each seed: every example right with probability 0.8, independently
            return [run(name, 0, seed=s, references=references,
                        predictions=(rng.random(300) > 0.8).astype(int).tolist()) for s in range(3)]
        gap = intervals.paired_bootstrap(method("a"), method("b"), resamples=400, seed=trial)
        covered += gap.low <= 0 <= gap.high
    assert 88 <= covered <= 100


def test_token_tasks_are_resampled_by_sentence_and_scored_by_word():
    references = [[1, 2, 3, 4], [1], [2, 2]]
    right = [[1, 2, 3, 4], [1], [2, 2]]
    half = [[1, 2, 0, 0], [1], [0, 2]]  # 4 of 7 words right
    a = [run("a", 1.0, predictions=right, references=references)]
    b = [run("b", 4 / 7, predictions=half, references=references)]
    a[0]["metric"] = b[0]["metric"] = "token_accuracy"
    a[0]["test"] = {"token_accuracy": 1.0}
    b[0]["test"] = {"token_accuracy": 4 / 7}
    gap = intervals.gap_interval(a, b, "token_accuracy", 3)
    assert gap.gap == pytest.approx(3 / 7) and "3 test examples" in gap.how


def test_runs_on_different_examples_or_metrics_fall_back_to_the_normal_interval():
    a = [run("a", 0.8, predictions=[0, 1], references=[0, 1])]
    b = [run("b", 0.7, predictions=[0, 1], references=[1, 1])]
    assert intervals.gap_interval(a, b, "accuracy", 600).how.startswith("normal")
    assert intervals.gap_interval([run("a", 0.8)], [run("b", 0.7)], "accuracy", 600).how.startswith("normal")


def by_method(*runs):
    out = {}
    for r in runs:
        out.setdefault(r["method"], []).append(r)
    return out


def test_the_best_method_is_picked_on_validation_never_on_test():
    runs = by_method(run("sk-prefix-linear", 0.90, validation=0.70), run("sk-prefix-scale", 0.80, validation=0.75),
                     run("sk-prefix-frozen", 0.95, validation=0.99),  # an ablation: never the best SK
                     run("prefix-tuning-text", 0.78, validation=0.74))
    assert stats.pick_on_validation(runs, ["sk-prefix-linear", "sk-prefix-scale"]) == "sk-prefix-scale"
    _, rows, _ = stats.table([r for rs in runs.values() for r in rs])
    (claim, verdict, detail), *_ = stats.claims(runs, rows, None)
    assert detail.startswith("best SK on validation sk-prefix-scale 0.800 vs best baseline on validation "
                             "prefix-tuning-text 0.780")
    assert verdict == "inconclusive"  # one seed each: 0.02 is inside the test set's own noise


def test_headline_leads_with_the_text_initialised_counterparts_and_the_ablations():
    methods = ["sk-prefix-lowrank", "sk-prefix-embedding", "sk-prefix-linear", "prefix-tuning-text",
               "sk-prompt-lowrank", "prompt-tuning-text", "sk-prefix-frozen", "sk-prefix-unrelated", "prefix-tuning"]
    runs = by_method(*[run(m, 0.7 + 0.01 * i, seed=s) for i, m in enumerate(methods) for s in range(3)])
    found = {(c.ours, c.theirs) for c in stats.headline(runs)}
    assert found == {("sk-prefix-lowrank", "prefix-tuning-text"), ("sk-prefix-linear", "prefix-tuning-text"),
                     ("sk-prefix-embedding", "prefix-tuning-text"), ("sk-prompt-lowrank", "prompt-tuning-text"),
                     ("sk-prefix-lowrank", "sk-prefix-frozen"), ("sk-prefix-lowrank", "sk-prefix-unrelated")}
    # best other than embedding: linear (validation 0.72) beats lowrank (0.70); a constant gap over seeds
    best = next(c for c in stats.headline(runs) if c.question.startswith("best SK-Prefix"))
    assert best.ours == "sk-prefix-linear" and best.gap.gap == pytest.approx(-0.01)


def test_steps_verdict_needs_every_seed_on_one_side():
    assert stats.steps_verdict([30, 60, 60], [90, None, 120]) == "held"
    assert stats.steps_verdict([30, 90, 60], [90, None, 120]) == "inconclusive"  # SK's 90 ties a baseline seed
    assert stats.steps_verdict([90, None, 120], [30, 60, 90]) == "did not hold"
    assert stats.steps_verdict([None], [None]) == "did not hold"  # neither got there: SK was not faster


def test_parameters_claim_is_comparable_only_when_the_interval_says_so():
    sk = [run("sk-prompt-scale", v, seed=s, trainable=2_000) for s, v in enumerate((0.80, 0.81, 0.82))]
    lora = [run("lora", v, seed=s, trainable=400_000) for s, v in enumerate((0.80, 0.81, 0.82))]
    runs = by_method(*sk, *lora)
    _, rows, _ = stats.table(sk + lora)
    claim = stats.claims(runs, rows, None)[-1]
    # equal means: the interval (about +/- 0.05 with 600 test examples) reaches below -0.01
    assert claim[0] == stats.CLAIMS[2] and claim[1] == "inconclusive"
    worse = [run("sk-prompt-scale", v, seed=s, trainable=2_000) for s, v in enumerate((0.60, 0.61, 0.62))]
    runs = by_method(*worse, *lora)
    _, rows, _ = stats.table(worse + lora)
    assert stats.claims(runs, rows, None)[-1][1] == "did not hold"


def test_the_bootstrap_carries_the_unbiased_seed_variance():
    """Three seeds at 0.80, 0.85, 0.90 on 5,000 examples (test noise about 0.006): the seed variance of the
    mean is 0.05^2 / 3, so about +/- 0.057 at 95 %; a plain bootstrap of 3 seeds would give +/- 0.046."""
    n = 5000
    references = [0] * n
    a = [run("a", p, seed=s, references=references, predictions=(1 - correct_vector(n, round(n * (1 - p)), s)).tolist())
         for s, p in enumerate((0.80, 0.85, 0.90))]
    b = [run("b", 0.7, seed=s, references=references, predictions=(1 - correct_vector(n, 1500, 7)).tolist())
         for s in range(3)]
    gap = intervals.paired_bootstrap(a, b, resamples=2000)
    assert gap.gap == pytest.approx(0.15)
    assert 0.052 < (gap.high - gap.low) / 2 < 0.066


def _simulated_delta(rng, seeds: int, examples: int, population: np.ndarray) -> np.ndarray:
    """Correct (1) or not per seed and test example for two methods, from per-example probabilities of
    a population (so a test set is a sample of it) shifted per seed (another training run)."""
    chosen = population[rng.integers(0, len(population), examples)]  # (examples, 2): p_a, p_b
    shift = rng.normal(0, 0.04, (seeds, 2))
    p = np.clip(chosen[None, :, :] + shift[:, None, :], 0, 1)
    correct = rng.random(p.shape) < p
    return correct[..., 0].astype(float) - correct[..., 1].astype(float)


@pytest.mark.parametrize("seeds", [3, 10])
def test_the_seed_paired_interval_covers_the_true_gap_95_percent_of_the_time(seeds):
    """Simulated: the true gap is the population's mean difference (seed shifts average to zero); the
    interval should hold it in about 95 % of repetitions, counting seeds and test examples both."""
    from sktuning.bench.intervals import crossed_interval

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 50_000)
    population = np.stack([base + rng.normal(0.03, 0.05, base.size), base], 1).clip(0.05, 0.95)
    truth = float(population[:, 0].mean() - population[:, 1].mean())
    trials, hits = 600, 0
    for _ in range(trials):
        _, low, high, _ = crossed_interval(_simulated_delta(rng, seeds, 400, population))
        hits += low <= truth <= high
    assert 0.925 <= hits / trials <= 0.975, hits / trials


def test_the_seed_paired_interval_is_exact_for_a_design_with_known_variance():
    """Gaussian seeds, examples and noise: the half-width matches the formula's known value on average."""
    from sktuning.bench.intervals import crossed_interval

    rng = np.random.default_rng(1)
    seeds, examples, widths = 10, 200, []
    for _ in range(200):
        delta = 0.1 + rng.normal(0, 0.02, (seeds, 1)) + rng.normal(0, 0.3, (1, examples)) \
            + rng.normal(0, 0.5, (seeds, examples))
        mean, low, high, _ = crossed_interval(delta)
        widths.append((high - low) / 2)
    sd = np.sqrt(0.02 ** 2 / seeds + 0.3 ** 2 / examples + 0.5 ** 2 / (seeds * examples))
    assert np.mean(widths) == pytest.approx(1.96 * sd, rel=0.1)
