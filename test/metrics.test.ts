// Metrics against hand-computed values: accuracy, macro-F1, ECE, log loss, Student-t quantiles,
// the mean's confidence interval over seeds, and the percentile bootstrap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { accuracy, argmax, bootstrapCI, expectedCalibrationError, logLoss, macroF1, meanCI, studentTCdf, studentTQuantile } from "../src/tasks/metrics.js";

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b} (tol ${tol})`);

test("accuracy and argmax", () => {
  assert.equal(accuracy([0, 1, 1, 2], [0, 1, 0, 2]), 0.75);
  assert.equal(argmax([0.1, 0.7, 0.2]), 1);
  assert.equal(argmax([0.5, 0.5]), 0);  // ties go to the first label
  assert.throws(() => accuracy([0], [0, 1]), /1 predictions for 2 gold labels/);
  assert.throws(() => accuracy([], []), /no examples/);
});

test("macro-F1 averages per-class F1 unweighted", () => {
  // class 0: tp 1, fp 1, fn 0 -> 2/3; class 1: tp 2, fp 0, fn 1 -> 4/5
  close(macroF1([0, 0, 1, 1], [0, 1, 1, 1]), (2 / 3 + 4 / 5) / 2);
  // A class never predicted and never gold counts as 0 when numClasses names it.
  close(macroF1([0, 1], [0, 1], 3), 2 / 3);
  close(macroF1([0, 1], [0, 1]), 1);
  // Predicting one class everywhere: F1 of the majority class only.
  close(macroF1([0, 0, 0, 0], [0, 0, 0, 1]), (6 / 7 + 0) / 2);
});

test("expected calibration error over 10 equal-width bins", () => {
  const probs = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]];
  const gold = [0, 1, 0, 0];
  // bins: (0.8,0.9] one right at 0.9 -> 0.1; (0.7,0.8] one wrong at 0.8 -> 0.8; (0.5,0.6] two right, conf 1.15 -> 0.85
  close(expectedCalibrationError(probs, gold), (0.1 + 0.8 + 0.85) / 4);
  close(expectedCalibrationError([[1, 0], [0, 1]], [0, 1]), 0);
  close(expectedCalibrationError([[0.5, 0.5], [0.5, 0.5]], [0, 1]), 0);  // 50% confident, 50% right
  close(logLoss([[0.5, 0.5], [0.25, 0.75]], [0, 1]), -(Math.log(0.5) + Math.log(0.75)) / 2);
});

test("Student-t quantiles match the tables", () => {
  close(studentTQuantile(0.975, 1), 12.7062047, 1e-5);
  close(studentTQuantile(0.975, 2), 4.3026527, 1e-6);
  close(studentTQuantile(0.975, 4), 2.7764451, 1e-6);
  close(studentTQuantile(0.975, 10), 2.2281389, 1e-6);
  close(studentTQuantile(0.995, 30), 2.7499957, 1e-5);
  close(studentTQuantile(0.025, 5), -2.5705818, 1e-6);
  close(studentTCdf(0, 3), 0.5, 1e-12);
});

test("the mean's confidence interval over seeds uses the t-distribution", () => {
  const ci = meanCI([1, 2, 3]);  // sd 1, t(0.975, 2) = 4.3026527
  close(ci.mean, 2);
  close(ci.high - ci.mean, 4.3026527 / Math.sqrt(3), 1e-6);
  close(ci.mean - ci.low, 4.3026527 / Math.sqrt(3), 1e-6);
  assert.equal(ci.n, 3);
  const one = meanCI([0.7]);
  assert.deepEqual([one.low, one.mean, one.high], [0.7, 0.7, 0.7]);
  const c90 = meanCI([0.6, 0.7, 0.8, 0.9], 0.9);  // sd 0.1291, t(0.95, 3) = 2.3533634
  close(c90.high - c90.mean, 2.3533634 * Math.sqrt(0.05 / 3 / 4), 1e-6);
  assert.throws(() => meanCI([]), /no values/);
});

test("the bootstrap is seeded and brackets the statistic", () => {
  const values = Array.from({ length: 200 }, (_, i) => (i % 4 === 0 ? 1 : 0));  // mean 0.25
  const stat = (idx: number[]) => idx.reduce((s, i) => s + values[i], 0) / idx.length;
  const a = bootstrapCI(values.length, stat, { seed: 3, resamples: 500 });
  const b = bootstrapCI(values.length, stat, { seed: 3, resamples: 500 });
  assert.deepEqual(a, b);
  close(a.mean, 0.25);
  assert.ok(a.low < 0.25 && a.high > 0.25, JSON.stringify(a));
  // The normal approximation's half-width is 1.96 * sqrt(.25 * .75 / 200) = 0.060.
  assert.ok(Math.abs(a.high - a.low - 0.12) < 0.03, JSON.stringify(a));
  const constant = bootstrapCI(10, () => 0.5);
  assert.deepEqual([constant.low, constant.mean, constant.high], [0.5, 0.5, 0.5]);
});
