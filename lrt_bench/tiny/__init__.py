"""The tiny world (docs/design.md §4.8): an offline stand-in for a real slow-thinking LLM.

- `tokenizer`: a byte-level tokenizer with Qwen3's special tokens and chat template.
- `task`: seeded multi-step arithmetic problems with explicit reasoning traces (graded by
  `lrt_bench.eval.grading.grade_math`, like every task).
- `build`: `build_tiny_world(out)` trains a small Qwen3 base on CPU and writes an HF model dir,
  the data splits, a backbone config for G_φ and `world.json` with measured accuracies.
"""
