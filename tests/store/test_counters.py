"""A counter's increase from its summaries (dcim.store.counters), over plain data."""

import random

import numpy as np
import pytest

from dcim.store.counters import CounterSpan, bucket_increases, bucket_span, chain, counter_delta, junction, junctions


def summarise(samples, per_bucket):
    """Split a raw counter trace into buckets of *per_bucket* samples → (first, last, max) lists."""
    firsts, lasts, maxes = [], [], []
    for i in range(0, len(samples), per_bucket):
        chunk = samples[i:i + per_bucket]
        firsts.append(chunk[0]), lasts.append(chunk[-1]), maxes.append(max(chunk))
    return firsts, lasts, maxes


def true_energy(samples):
    total = 0.0
    for a, b in zip(samples, samples[1:]):
        total += b - a if b >= a else b
    return total


@pytest.mark.parametrize("reset_at", [None, 7, 12, 13, 20])
def test_counter_delta_matches_sample_by_sample_sum(reset_at):
    samples = []
    value = 1000.0
    for i in range(24):
        if i == reset_at:
            value = 0.5
        samples.append(value)
        value += 3.0 + (i % 5)
    firsts, lasts, maxes = summarise(samples, 6)
    got, resets = counter_delta(firsts, lasts, maxes)
    assert got == pytest.approx(true_energy(samples))
    assert resets == (0 if reset_at is None else 1)


def test_counter_gap_still_counts_energy_across_it():
    firsts, lasts, maxes = [0.0, None, 50.0], [10.0, None, 60.0], [10.0, None, 60.0]
    assert counter_delta(firsts, lasts, maxes) == (60.0, 0)


def test_spans_chain_like_the_buckets_they_summarise():
    """A run of buckets folded into one span (first, last, the increase and resets inside it,
    junctions included) chains with its neighbours exactly as the buckets do: what the rollups
    store per day and add up per period."""
    rnd = random.Random(3)
    for _ in range(200):
        value, samples = rnd.uniform(0, 1e6), []
        for _ in range(rnd.randrange(12, 60)):
            value = rnd.uniform(0, 50) if rnd.random() < 0.05 else value + rnd.uniform(0, 900)
            samples.append(value)
        firsts, lasts, maxes = summarise(samples, 4)
        want = counter_delta(firsts, lasts, maxes)
        a = rnd.randrange(0, len(firsts))
        b = rnd.randrange(a, len(firsts)) + 1
        inner, inner_resets = counter_delta(firsts[a:b], lasts[a:b], maxes[a:b])
        spans = [bucket_span(*x) for x in zip(firsts[:a], lasts[:a], maxes[:a])]
        spans.append(CounterSpan(firsts[a], lasts[b - 1], inner, inner_resets))
        spans += [bucket_span(*x) for x in zip(firsts[b:], lasts[b:], maxes[b:])]
        got = chain(spans)
        assert got[1] == want[1] and got[0] == pytest.approx(want[0], rel=1e-12)


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_array_forms_equal_the_scalar_rules(dtype):
    """bucket_increases and junctions (numpy, for many series at once) give what bucket_span and
    junction give one by one: drops, ties and rises, int and float counters."""
    rng = random.Random(5)
    n = 400
    first = np.array([rng.choice([0, 5, 10, 10**12 + rng.randint(0, 99)]) for _ in range(n)], dtype)
    last = np.array([rng.choice([0, 5, 10, 10**12 + rng.randint(0, 99)]) for _ in range(n)], dtype)
    top = np.maximum(np.maximum(first, last), np.array([rng.choice([0, 7, 10**12 + 200]) for _ in range(n)], dtype))
    inc, dropped = bucket_increases(first, last, top)
    spans = [bucket_span(a, b, t) for a, b, t in zip(first.tolist(), last.tolist(), top.tolist())]
    assert inc.tolist() == [float(s.increase) for s in spans]
    assert dropped.astype(int).tolist() == [s.resets for s in spans]
    step, reset = junctions(last, first)
    pairs = [junction(b, a) for a, b in zip(first.tolist(), last.tolist())]
    assert step.tolist() == [float(x) for x, _ in pairs] and reset.astype(int).tolist() == [r for _, r in pairs]
    assert dropped.any() and not dropped.all() and reset.any() and not reset.all()
