"""AMC: amc23 (40 problems of AMC 2023) and amc83 (83 problems of AMC 2022-23); math docs."""

from lrt_bench.eval import data, task_utils


def load_amc23(**metadata):
    return data.lm_eval_dataset("amc23", **metadata)


def load_amc83(**metadata):
    return data.lm_eval_dataset("amc83", **metadata)


doc_to_text = task_utils.math_prompt
process_results = task_utils.process_math
