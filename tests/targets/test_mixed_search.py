"""The shared mixed-precision search (``edgepack.mixed``), both strategies, on trials whose candidates are
output arrays with known noise per layer, judged by the real comparison kernel and gate: which layers come
back, how many full and cheap measurements it took, and what happens when layers only help together, when
the budget is too small, when nothing is enough, and when an output fails on something SNR does not see."""
from __future__ import annotations

import numpy as np
import pytest
from edgepack_runtime.compare import compare_runs, summarize
from edgepack_runtime.precisions import gate

from edgepack.mixed import Trial, search

GATE = gate("int8")          # mean cosine 0.98, relative error 0.5, SNR 15 dB
SAMPLES = 16


class Net:
    """Output y = ref + sum of the noise of every layer not kept. ``loud``: layer -> noise amplitude;
    ``pair``: two layers whose noise disappears only when both are kept (a tensor and its reader)."""

    def __init__(self, layers=40, loud=None, pair=(), pair_amp=0.0, spike=None, stuck=0.0):
        rng = np.random.default_rng(0)
        self.names = [f"l{i}" for i in range(layers)]
        self.ref = [{"y": np.sin(np.linspace(0, 6, 256) + k).astype(np.float64)} for k in range(SAMPLES)]
        self.amp = {n: 0.01 for n in self.names} | (loud or {})
        self.noise = {n: rng.standard_normal((SAMPLES, 256)) for n in self.names}
        self.pair, self.pair_amp, self.spike = set(pair), pair_amp, spike
        self.pair_noise = rng.standard_normal((SAMPLES, 256))
        self.stuck = stuck * rng.standard_normal((SAMPLES, 256))     # noise no layer's precision removes

    def make(self, keep):
        e = sum((self.amp[n] * self.noise[n] for n in self.names if n not in keep), np.zeros((SAMPLES, 256)))
        if self.pair and not self.pair <= set(keep):
            e = e + self.pair_amp * self.pair_noise
        e = e + self.stuck
        if self.spike and self.spike not in keep:     # one sample far off in one place: relative error only
            e = e.copy()
            e[SAMPLES - 1, 0] += 0.9
        return e

    def evaluate(self, e, n):
        n = n or SAMPLES
        got = [{"y": r["y"] + e[i]} for i, r in enumerate(self.ref[:n])]
        return summarize(compare_runs(got, self.ref[:n], ["y"]), GATE)

    def trial(self):
        return Trial(self.make, self.evaluate, lambda e: 0)

    def ranked(self, order=None):
        return [{"tensor": n} for n in (order or self.names)]

    def run(self, strategy, order=None, budget=0.25):
        trial = self.trial()
        start = self.make([])
        keep, _, fig = search(trial, [], [], self.ranked(order), budget, start, self.evaluate(start, None),
                              strategy=strategy)
        return keep, fig, trial


def test_isolate_finds_the_loud_layers_with_one_full_measurement():
    net = Net(loud={"l3": 0.5, "l9": 0.4, "l14": 0.3})
    keep, fig, trial = net.run("isolate")
    assert sorted(keep) == ["l14", "l3", "l9"] and fig["passed"] and fig["min_snr_db"] > 15
    assert len(trial.tried) == 1 and trial.tried[0]["passed"] and 5 <= trial.cheap <= 30
    old_keep, old_fig, old = net.run("legacy")
    assert old_fig["passed"] and len(old.tried) > len(trial.tried)


def test_a_culprit_the_ranking_puts_last_is_still_found():
    net = Net(loud={"l39": 0.6})
    keep, fig, _ = net.run("isolate")
    assert keep == ["l39"] and fig["passed"]
    _, old_fig, _ = net.run("legacy")        # beyond the legacy scan's head and its budget
    assert not old_fig["passed"]


def test_layers_that_only_help_together_stay_together():
    net = Net(pair=("l5", "l25"), pair_amp=0.5)
    keep, fig, trial = net.run("isolate")
    assert sorted(keep) == ["l25", "l5"] and fig["passed"] and len(trial.tried) == 1


def test_over_budget_and_unreachable_come_back_as_the_best_failing_attempt():
    net = Net(loud={f"l{i}": 0.3 for i in range(0, 40, 2)})        # 20 loud layers, budget 10
    keep, fig, trial = net.run("isolate")
    assert not fig["passed"] and len(keep) == 10 and len(trial.tried) == 1
    assert fig["min_snr_db"] > net.evaluate(net.make([]), None)["min_snr_db"]


def test_a_relative_error_miss_tightens_the_target_until_it_is_gone():
    net = Net(loud={"l8": 0.25}, spike="l13")      # SNR fails because of l8; the max error because of l13
    keep, fig, trial = net.run("isolate", budget=0.5)     # the spike is in the last sample: not scanned at first
    assert fig["passed"] and sorted(keep) == ["l13", "l8"] and len(trial.tried) == 2


def test_a_model_the_scan_samples_already_pass_ends_without_a_full_measurement():
    net = Net()
    keep, fig, trial = net.run("isolate")
    assert keep == [] and fig["passed"] and trial.tried == [] and trial.cheap == 1


def test_unknown_strategy_is_a_clear_error():
    net = Net()
    with pytest.raises(ValueError, match="isolate"):
        search(net.trial(), [], [], net.ranked(), 0.25, None, net.evaluate(net.make([]), None), strategy="greedy")


def test_when_no_set_reaches_the_gate_the_search_stops_after_the_climb():
    net = Net(loud={"l2": 0.3}, stuck=0.4)
    keep, fig, trial = net.run("isolate")
    assert not fig["passed"] and len(trial.tried) == 1 and trial.cheap <= 8       # base + 1, 2, 4 ... 40
    assert keep == [f"l{i}" for i in range(10)] and fig["min_snr_db"] > net.evaluate(net.make([]), None)["min_snr_db"]
