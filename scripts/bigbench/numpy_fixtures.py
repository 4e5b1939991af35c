"""Values of numpy's legacy RandomState, for labrun's port (`bigbench/src/rng.rs`).

    python numpy_fixtures.py ../../bigbench/tests/fixtures/numpy_random_state.json
"""

import json
import sys

import numpy as np


def main():
    cases = []
    for seed in [0, 1, 42, 12345, 2**32 - 1]:
        c = {"seed": seed, "permutations": {}, "choice_one": {}, "choice_distinct": []}
        r = np.random.RandomState(seed)
        for n in [1, 2, 3, 7, 10, 100, 1000]:
            c["permutations"][str(n)] = [int(v) for v in r.permutation(n)]
        for n in [1, 2, 3, 5, 7, 100, 1000, 2**31 + 5]:
            c["choice_one"][str(n)] = [int(r.choice(n)) for _ in range(20)]
        for n, k in [(10, 3), (50, 50), (1000, 7)]:
            c["choice_distinct"].append({"n": n, "k": k, "idx": [int(v) for v in r.choice(n, k, replace=False)]})
        cases.append(c)
    with open(sys.argv[1], "w") as f:
        json.dump({"numpy": np.__version__, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
