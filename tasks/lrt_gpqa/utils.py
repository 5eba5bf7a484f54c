"""GPQA-diamond: choice docs with the four options in a fixed per-question shuffled order."""

from lrt_bench.eval import data, task_utils


def load(**metadata):
    return data.lm_eval_dataset("gpqa_diamond", **metadata)


doc_to_text = task_utils.choice_prompt
process_results = task_utils.process_choice
