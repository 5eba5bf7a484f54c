#!/usr/bin/env bash
# The documented command of every stage of this demo run, in order (the leaderboard and the untrained G_φ are written by the demo itself).
set -euo pipefail
python -m trainers.sft --config trainers/recipes/tiny/sft.yaml --output_dir /work/exp/s29/pin0/train/sft --overwrite
python -m trainers.grpo --config trainers/recipes/tiny/grpo.yaml --output_dir /work/exp/s29/pin0/train/grpo --reasoner /work/exp/s29/pin0/train/sft/reasoner --overwrite
python -m trainers.grpo --config trainers/recipes/tiny/shorterbetter.yaml --output_dir /work/exp/s29/pin0/train/shorterbetter --overwrite
python -m trainers.grpo --config trainers/recipes/tiny/lcr1.yaml --output_dir /work/exp/s29/pin0/train/lcr1 --overwrite
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b16/think --gen_kwargs max_gen_toks=16 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=nothink --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b16/nothink --gen_kwargs max_gen_toks=16 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=latent,reasoner=/work/exp/s29/pin0/train/grpo/reasoner --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b16/lrt --gen_kwargs max_gen_toks=16 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pin0/train/shorterbetter/model,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b16/shorterbetter --gen_kwargs max_gen_toks=16 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pin0/train/lcr1/model,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b16/lcr1 --gen_kwargs max_gen_toks=16 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b64/think --gen_kwargs max_gen_toks=64 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=nothink --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b64/nothink --gen_kwargs max_gen_toks=64 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=latent,reasoner=/work/exp/s29/pin0/train/grpo/reasoner --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b64/lrt --gen_kwargs max_gen_toks=64 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/think --gen_kwargs max_gen_toks=512 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=nothink --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/nothink --gen_kwargs max_gen_toks=512 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=latent,reasoner=/work/exp/s29/pin0/train/untrained/reasoner --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/lrt-untrained --gen_kwargs max_gen_toks=512 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=latent,reasoner=/work/exp/s29/pin0/train/sft/reasoner --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/lrt-sft --gen_kwargs max_gen_toks=512 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pinworld0/base,mode=latent,reasoner=/work/exp/s29/pin0/train/grpo/reasoner --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/lrt --gen_kwargs max_gen_toks=512 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pin0/train/shorterbetter/model,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/shorterbetter --gen_kwargs max_gen_toks=512 --log_samples
lm_eval --model lrt --model_args pretrained=/work/exp/s29/pin0/train/lcr1/model,mode=think --tasks lrt_tiny --batch_size 256 --device cpu --seed 0,0,0,0 --output_path /work/exp/s29/pin0/results/b512/lcr1 --gen_kwargs max_gen_toks=512 --log_samples
lrt-bench redundancy --model /work/exp/s29/pinworld0 --task lrt_tiny --limit 100 --out /work/exp/s29/pin0/redundancy
python -m lrt_bench.tools.traces --world /work/exp/s29/pinworld0 --problems 100 --out /work/exp/s29/pin0/traces.json
python -m lrt_bench.tools.findings /work/exp/s29/pin0
