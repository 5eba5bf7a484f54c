"""GSM8K (main, test): docs {"id", "problem", "answer"}, answer = the number after ####."""

from lrt_bench.eval import data, task_utils


def load(**metadata):
    return data.lm_eval_dataset("gsm8k", **metadata)


doc_to_text = task_utils.math_prompt
process_results = task_utils.process_math
