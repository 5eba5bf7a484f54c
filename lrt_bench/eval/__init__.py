"""Evaluation on top of the core: the `lrt` lm-eval backend and its start-up hook, response accounts,
grading, benchmark data, the tasks' hooks, in-process lm-eval and the hybrid router.

Imports only the core and the shared utilities (tests/test_layers.py checks this). Kept cheap: the
start-up hook (`lrt_bench.eval._lm_eval_hook`) imports this package at every interpreter start.
"""
