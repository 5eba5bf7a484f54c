"""MATH-500: docs {"id", "problem", "answer"}; math prompt and grading from lrt_bench.eval.task_utils."""

from lrt_bench.eval import data, task_utils


def load(**metadata):
    return data.lm_eval_dataset("math500", **metadata)


doc_to_text = task_utils.math_prompt
process_results = task_utils.process_math
