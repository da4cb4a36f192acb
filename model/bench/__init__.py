"""The benchmarks that need only `model`: the engine's pieces and baselines of
`gpt2bot bench generation`, and the fine-tuning recipe's `gpt2bot bench training`. The
`gpt2bot bench` command, and the scenarios that also run the moderator, are in `bot/bench/`.

- `workload.py`: the generation benchmark's model, its 32 requests, and the engine settings.
- `measure.py`: what every scenario reports (tokens/s, latency and TTFT percentiles, peak
  memory) and the machine it ran on.
- `ceiling.py`: the compute and memory ceilings of a decode step; `breakdown.py`: one step's
  time by part.
- `baselines.py`: the naive bot, HF static and continuous batching, CTranslate2.
- `llamacpp.py`: llama.cpp's single sequence (the model written as GGUF), beside `single_stream`.
- `adapters.py`: the burst over 0, 2 and 8 adapter versions, and two full versions.
- `training.py`: tokens/s of the fine-tuning recipe against padded and HF `Trainer` baselines.

Each module imports torch and transformers at its top: import it only when its benchmark runs.
"""
