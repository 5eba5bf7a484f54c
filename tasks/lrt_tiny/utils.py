"""The tiny world's eval split ($LRT_TINY_DIR/data/eval.jsonl); the prompt is the bare problem."""

from lrt_bench.eval import data, task_utils


def load(**metadata):
    return data.lm_eval_tiny_dataset(**metadata)


doc_to_text = task_utils.tiny_prompt
process_results = task_utils.process_math
