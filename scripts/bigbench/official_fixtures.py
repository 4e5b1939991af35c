"""Reference values from the official BIG-bench code, for labrun's scorer tests.

For each task under data/bigbench and 0, 1 and 2 shots, this runs the official
`JsonTask.evaluate_model` with a fixed fake model (its generations and log-probabilities
come from SHA-256 hashes of the prompt and target, with deliberate ties), and writes:

- the exact prompts the official code builds, in order, for each (sub)task and shot count;
- every raw generation and log-probability the fake model returned;
- the official score list (subtasks, then aggregates) with low/high/preferred;
- every metric of `task_metrics.py` applied to the same outputs, whether or not the task
  lists it (ROUGE with numpy's global random state seeded with 0 just before it).

labrun's tests (`bigbench/tests/official.rs`) feed the same outputs through labrun and
compare. Run once, with the environment described in official_env.py:

    BIGBENCH_SRC=/path/to/bigbench-1.0.0 python official_fixtures.py \
        ../../data/bigbench ../../bigbench/tests/fixtures/official.json
"""

import hashlib
import json
import os
import sys

import official_env  # noqa: F401  (stubs TensorFlow and friends; must come first)
import numpy as np
import bigbench.api.json_task as json_task
import bigbench.api.task_metrics as metrics
import bigbench.models.model_utils as model_utils

SHOTS = [0, 1, 2]
# (task folder, max_examples): full tasks, and a sampled one of each kind.
CASES = [
    ("simple_arithmetic_json", None),
    ("simple_arithmetic_json", 7),
    ("simple_arithmetic_json_multiple_choice", None),
    ("simple_arithmetic_json_subtasks", None),
    ("simple_arithmetic_json_subtasks", 6),
    ("simple_arithmetic_multiple_targets_json", None),
    ("arithmetic/1_digit_addition", None),
    ("arithmetic/2_digit_subtraction", 60),
    ("repeat_copy_logic", None),
]


def h(*parts):
    return int(hashlib.sha256("\x00".join(parts).encode()).hexdigest(), 16)


class FakeModel:
    """Deterministic outputs; `answers` maps each formatted input to its targets."""

    def __init__(self, answers):
        self.answers = answers
        self.raw = {}

    def target_for(self, prompt):
        best = max((k for k in self.answers if prompt.endswith(k)), key=len)
        return self.answers[best]

    def raw_text(self, prompt):
        t = self.target_for(prompt)
        k = h("gen", prompt) % 8
        if k == 0:
            text = t[0] + "\nQ: What is 1 plus 1?"
        elif k == 1:
            text = " " + t[0] + ". Then more text"
        elif k == 2:
            text = t[0].upper() + " !"
        elif k == 3:
            text = "The answer is " + t[-1] + " and so on."
        elif k == 4:
            text = str(h("num", prompt) % 200 - 100)
        elif k == 5:
            text = t[0] + " " + t[0] + " ; " + t[-1]
        elif k == 6:
            try:
                text = "%g" % (float(t[0]) * 1.05)
            except ValueError:
                text = t[0][: max(1, len(t[0]) // 2)]
        else:
            text = "  " + t[-1] + "  "
        self.raw[prompt] = text
        return text

    def generate_text(self, inputs, max_length=None, stop_string=None, output_regex=None):
        single = isinstance(inputs, str)
        inputs = [inputs] if single else inputs
        out = [
            model_utils.postprocess_output(self.raw_text(p), max_length, stop_string, output_regex)
            for p in inputs
        ]
        return out[0] if single else out

    def cond_log_prob(self, inputs, targets, absolute_normalization=False):
        out = []
        for p, ts in zip(inputs, targets):
            row = []
            for t in ts:
                # No exact ties: the official tie-break hashes the normalised float64s,
                # whose last bits depend on numpy's vectorised log1p (it varies by CPU).
                # Ties are tested on their own (`argmax_cases`).
                row.append(-((h("lp", p, t) % 100000) / 10000.0) - 0.0001)
            out.append(row)
        return out


def leaves(task):
    return [x for s in task.subtasks for x in leaves(s)] if task.subtasks else [task]


def every_metric(task, samples, model):
    """Every official metric on these samples' outputs."""
    prompts = [task.task_prefix + s["input"] for s in samples]
    targets = [s["target"] for s in samples]
    responses = model.generate_text(prompts, stop_string=task.stop_string, output_regex=task.output_regex)
    out = {}
    for name, fn in metrics.GENERATIVE_FN.items():
        if name == "bleurt":
            continue
        if name == "numeric_match_with_0_1_relative_error" and any(len(t) != 1 for t in targets):
            continue
        if name == "rouge":
            np.random.seed(0)
        out.update(fn(targets, responses))
    out.update(metrics.log_likelihood_fn(model.cond_log_prob(prompts, targets), targets))
    if all("choice" in s for s in samples):
        absolute = model.cond_log_prob(prompts, [s["choice"] for s in samples])
        mc = []
        for s, a in zip(samples, absolute):
            s = dict(s)
            s["absolute_log_prob"] = a
            norm = list(np.array(a) - json_task.logsumexp(a))
            s["log_prob"] = a if task.absolute_normalization else norm
            mc.append(s)
        for name, fn in metrics.MULTIPLE_CHOICE_FN.items():
            try:
                out[name] = fn(mc)
            except ValueError as e:
                out[name + ":error"] = str(e)
    return {k: float(v) for k, v in out.items()}


def case(root, folder, max_examples):
    path = os.path.join(root, folder, "task.json")
    task = json_task.JsonTask(path, shot_list=SHOTS, max_examples=max_examples)
    answers = {}
    for leaf in leaves(task):
        for s in leaf._ds:
            answers[s["input"]] = s["target"]
    model = FakeModel(answers)
    scores = task.evaluate_model(model, max_examples=max_examples)
    runs = []
    for leaf in leaves(task):
        for shots in SHOTS:
            samples = leaf.shot_examples[shots]
            runs.append({
                "subtask": leaf.name,
                "shots": shots,
                "prompts": [leaf.task_prefix + s["input"] for s in samples],
                "every_metric": every_metric(leaf, samples, model),
            })
    lp = {}
    for leaf in leaves(task):
        for shots in SHOTS:
            for s in leaf.shot_examples[shots]:
                p = leaf.task_prefix + s["input"]
                ts = list(s["target"]) + list(s.get("choice", []))
                lp[p] = dict(zip(ts, model.cond_log_prob([p], [ts])[0]))
                model.raw_text(p)
    return {
        "task": folder,
        "max_examples": max_examples,
        "runs": runs,
        "raw": model.raw,
        "log_probs": lp,
        "scores": [
            {
                "subtask": s.subtask_description,
                "shots": s.number_of_shots,
                "preferred": s.preferred_score,
                "low": float(s.low_score),
                "high": float(s.high_score),
                "scores": {k: float(v) for k, v in s.score_dict.items()},
            }
            for s in scores
        ],
    }


def argmax_cases():
    """The official argmax on vectors with tied maxima."""
    out = []
    for i in range(300):
        n = 2 + h("n", str(i)) % 9
        x = [-((h("x", str(i), str(j)) % 50) / 8.0) for j in range(n)]
        x[h("tie", str(i)) % n] = max(x)
        out.append({"x": x, "argmax": int(metrics.argmax(x))})
    return out


def main():
    root, out = sys.argv[1], sys.argv[2]
    cases = [case(root, f, m) for f, m in CASES]
    with open(out, "w") as f:
        json.dump({"generator": "scripts/bigbench/official_fixtures.py", "cases": cases, "argmax_cases": argmax_cases()}, f, indent=0, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
