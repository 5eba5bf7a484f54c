"""LSAT (AGIEval): AR, LR, RC; choice docs {"id", "passage", "question", "options", "answer"}."""

from lrt_bench.eval import data, task_utils


def load_ar(**metadata):
    return data.lm_eval_dataset("lsat_ar", **metadata)


def load_lr(**metadata):
    return data.lm_eval_dataset("lsat_lr", **metadata)


def load_rc(**metadata):
    return data.lm_eval_dataset("lsat_rc", **metadata)


doc_to_text = task_utils.choice_prompt
process_results = task_utils.process_choice
