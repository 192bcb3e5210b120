"""``evaluate`` module scripts (load with ``evaluate.load(dlm.evaluation.metric_path(name))``): thin wrappers
around :mod:`dlm.evaluation`, so the module and the function give the same numbers."""
