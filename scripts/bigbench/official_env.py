"""Minimal import environment for the official BIG-bench 1.0.0 JSON-task code.

Importing this module (with /work/bbpy/bin/python) installs stub modules into
sys.modules so that afterwards

    import bigbench.api.json_task as json_task
    import bigbench.api.task_metrics as metrics
    import bigbench.api.results as results
    import bigbench.models.model_utils as model_utils

work without tensorflow, datasets, seqio or the heavy t5/__init__.py.

Stubbed:
  * tensorflow / tensorflow.compat / .compat.v1 / .compat.v2: only
    io.gfile.{isdir,glob,GFile,exists} (-> os.path.isdir / glob.glob / open)
    and logging.info (-> absl.logging.info) are provided.
  * datasets: load_metric raises (only used by the bleurt metric).
  * t5, t5.evaluation: bare package modules whose __path__ points at the
    installed t5 package dirs, so that the REAL t5/evaluation/metrics.py
    (and qa_utils.py) are imported without running t5/__init__.py or
    t5/evaluation/__init__.py.
"""

import glob as _glob
import importlib.util as _ilu
import os as _os
import sys as _sys
import types as _types

# The unpacked `bigbench` 1.0.0 source archive (`pip download --no-deps bigbench==1.0.0`).
BIGBENCH_SRC = _os.environ.get("BIGBENCH_SRC", "bigbench-1.0.0")


def _mod(name, **attrs):
    m = _types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def _install_tensorflow():
    if "tensorflow" in _sys.modules:
        return
    from absl import logging as _absl_logging

    def _isdir(p):
        return _os.path.isdir(p)

    def _glob_fn(pattern):
        return sorted(_glob.glob(pattern))

    def _exists(p):
        return _os.path.exists(p)

    class GFile:
        def __init__(self, name, mode="r"):
            self._f = open(name, mode)

        def __enter__(self):
            return self._f

        def __exit__(self, *exc):
            self._f.close()
            return False

        def __getattr__(self, item):
            return getattr(self._f, item)

    gfile = _mod("tensorflow.io.gfile", isdir=_isdir, glob=_glob_fn,
                 GFile=GFile, exists=_exists)
    io = _mod("tensorflow.io", gfile=gfile)
    logging = _mod("tensorflow.logging", info=_absl_logging.info,
                   warning=_absl_logging.warning, error=_absl_logging.error)

    tf = _mod("tensorflow", io=io, logging=logging, __path__=[])
    compat = _mod("tensorflow.compat", __path__=[])
    v1 = _mod("tensorflow.compat.v1", io=io, logging=logging, gfile=gfile)
    v2 = _mod("tensorflow.compat.v2", io=io, logging=logging)
    compat.v1 = v1
    compat.v2 = v2
    tf.compat = compat
    for m in (tf, compat, v1, v2, io, gfile):
        _sys.modules[m.__name__] = m


def _install_datasets():
    if "datasets" in _sys.modules:
        return

    def load_metric(*args, **kwargs):
        raise NotImplementedError(
            "datasets.load_metric is stubbed in official_env (bleurt unsupported)")

    _sys.modules["datasets"] = _mod("datasets", load_metric=load_metric)


def _install_t5():
    if "t5.evaluation.metrics" in _sys.modules:
        return
    spec = _ilu.find_spec("t5")  # does not execute t5/__init__.py
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("t5 is not installed in this interpreter")
    t5_dir = list(spec.submodule_search_locations)[0]
    t5 = _mod("t5", __path__=[t5_dir], __file__=_os.path.join(t5_dir, "__init__.py"))
    ev_dir = _os.path.join(t5_dir, "evaluation")
    ev = _mod("t5.evaluation", __path__=[ev_dir],
              __file__=_os.path.join(ev_dir, "__init__.py"))
    t5.evaluation = ev
    _sys.modules["t5"] = t5
    _sys.modules["t5.evaluation"] = ev
    import t5.evaluation.metrics  # noqa: F401  (real code)


_install_tensorflow()
_install_datasets()
_install_t5()

if BIGBENCH_SRC not in _sys.path:
    _sys.path.insert(0, BIGBENCH_SRC)
