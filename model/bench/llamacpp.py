"""llama.cpp's single sequence on the bench's model: the baseline `single_stream` is held to
(issue 27), measured when llama-cpp-python and gguf are installed (docs/benchmarks.md).

The model is written as an f32 GGUF of the `gpt2` architecture with the `gguf` package
directly, not with llama.cpp's `convert_hf_to_gguf.py`: that converter identifies a BPE
tokenizer by the hash of what it makes of a test text and refuses the bench's own byte-level
BPE (trained on the bundled corpus), although its pre-tokenizer is GPT-2's. The tokens and
merges come from the model's tokenizer. llama.cpp's own quantizer makes each measured type
from the f32 file.

Every type is measured in a spawned process of its own: llama.cpp brings its own OpenMP pool
(torch's would compete with it), and a type whose kernels crash on this CPU (issue 27 saw q8_0
crash on a Xeon) is then an error in the report instead of the end of the benchmark.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.backends.base import SamplingParams

if TYPE_CHECKING:  # the child process imports this module: it needs neither torch nor these
    import torch

    from model.bench.workload import Workload
    from model.versions import LoadedModel

# the types measured, each made by llama.cpp's quantizer from the f32 file: its 16-bit types
# and its 8-bit one (the engine's int8 is held to the same quality test), fastest usually last
LLAMACPP_TYPES = ("bf16", "q8_0")
FTYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}  # llama.cpp's LLAMA_FTYPE_* values
# token types of llama.cpp's vocabulary (gguf.TokenType)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5
# HF GPT-2 keeps these as Conv1D (in, out); GGUF wants (out, in), as nn.Linear does
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
RENAMES = {
    "ln_1": "attn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    "ln_2": "ffn_norm",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}


def llamacpp_available() -> bool:
    """Both packages importable; found without loading llama.cpp into this process."""
    return all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "gguf"))


def run_llamacpp(
    loaded: LoadedModel,
    workload: Workload,
    shape: dict[str, Any],
    params: SamplingParams,
    threads: int,
) -> dict[str, Any]:
    """`single_stream` in llama.cpp: the same prompt and sampling, `shape["new_tokens"]` tokens
    (EOS banned so every run makes all of them), `shape["runs"]` timed runs after a warm-up,
    for each type; the fastest type's numbers are the result, every type's are listed."""
    tokenizer = loaded.tokenizer
    # the engine is given the prompt as text and encodes it: the same ids here
    prompt = tokenizer.encode(tokenizer.decode(workload.short.prompt_ids[: shape["prompt_tokens"]]))
    by_type: dict[str, Any] = {}
    crashed: list[str] = []  # types measured again without the extra buffer types
    best: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpt2bot-gguf-") as folder:
        source = write_gguf(loaded, Path(folder) / "f32.gguf")
        for name in LLAMACPP_TYPES:
            try:
                result = _measure_type(source, name, prompt, shape, params, threads)
            except Exception as error:  # a crashed type is a result, the others still run
                by_type[name] = {"error": f"{type(error).__name__}: {error}"}
                continue
            del result["tokens"]  # the report keeps the rates, not the text
            if not result.pop("extra_buffer_types"):
                crashed.append(name)
            by_type[name] = result["tokens_per_s"]
            if result["tokens_per_s"] > best.get("tokens_per_s", 0.0):
                best = {**result, "type": name}
    if not best:
        raise RuntimeError(f"no GGUF type ran: {by_type}")
    return {**best, "by_type": by_type, "crashed_with_extra_buffer_types": crashed}


def continuation(
    loaded: LoadedModel, prompt: list[int], new_tokens: int, name: str = "f32", threads: int = 1
) -> list[int]:
    """llama.cpp's greedy continuation of `prompt` on this model in GGUF type `name`."""
    shape = {"new_tokens": new_tokens, "runs": 0}
    greedy = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    with tempfile.TemporaryDirectory(prefix="gpt2bot-gguf-") as folder:
        source = write_gguf(loaded, Path(folder) / "f32.gguf")
        tokens: list[int] = _measure_type(source, name, prompt, shape, greedy, threads)["tokens"]
    return tokens


def write_gguf(loaded: LoadedModel, path: Path) -> Path:
    """The model and its tokenizer as an f32 GGUF of llama.cpp's `gpt2` architecture."""
    import gguf

    config: Any = loaded.model.config
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_name(f"gpt2bot {loaded.version}")
    writer.add_block_count(config.n_layer)
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_file_type(FTYPES["f32"])
    _add_tokenizer(writer, loaded, config.vocab_size)
    for name, tensor in _tensors(loaded.model):
        writer.add_tensor(name, tensor.detach().float().contiguous().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_tokenizer(writer: Any, loaded: LoadedModel, vocab_size: int) -> None:
    """GPT-2's tokenizer scheme (`gpt2` model, `gpt-2` pre-tokenizer) with this model's own
    tokens and merges; ids the tokenizer lacks (a vocabulary padded for the model) are unused."""
    tokenizer: Any = loaded.tokenizer
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = {i: t.special for i, t in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        tokens.append(by_id.get(i, f"[PAD{i}]"))
        kind = NORMAL if i not in added else CONTROL if added[i] else USER_DEFINED
        types.append(kind if i in by_id else UNUSED)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tokenizer.eos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_add_bos_token(False)  # GPT-2 prompts start without one, as the engine's do


def _tensors(model: Any) -> list[tuple[str, torch.Tensor]]:
    """HF GPT-2's weights under llama.cpp's names (`src/models/gpt2.cpp`)."""
    state = model.state_dict()
    out = [
        ("token_embd.weight", state["transformer.wte.weight"]),
        ("position_embd.weight", state["transformer.wpe.weight"]),
        ("output_norm.weight", state["transformer.ln_f.weight"]),
        ("output_norm.bias", state["transformer.ln_f.bias"]),
    ]
    head = model.get_output_embeddings().weight
    if head.data_ptr() != model.get_input_embeddings().weight.data_ptr():  # else llama.cpp ties
        out.append(("output.weight", head))
    for key, tensor in state.items():
        if not key.startswith("transformer.h.") or key.endswith((".attn.bias", ".masked_bias")):
            continue
        block, rest = key.removeprefix("transformer.h.").split(".", 1)
        part, kind = rest.rsplit(".", 1)
        tensor = tensor.t() if rest in CONV1D else tensor
        out.append((f"blk.{block}.{RENAMES[part]}.{kind}", tensor))
    return out


def _measure_type(
    source: Path,
    name: str,
    prompt: list[int],
    shape: dict[str, Any],
    params: SamplingParams,
    threads: int,
) -> dict[str, Any]:
    """Type `name` measured in a child; where its process dies with llama.cpp's extra buffer
    types (on the project's Xeon q8_0 segfaults in `ggml_backend_amx_mul_mat`, its AMX
    kernel), measured again with plain CPU buffers; `extra_buffer_types` says which ran."""
    try:
        result = _in_child(_measure, source, name, prompt, shape, params, threads, True)
        return {**result, "extra_buffer_types": True}
    except BrokenProcessPool:
        result = _in_child(_measure, source, name, prompt, shape, params, threads, False)
        return {**result, "extra_buffer_types": False}


def _in_child(function: Any, *args: Any) -> dict[str, Any]:
    """`function(*args)` in a spawned process of its own (see the module's docstring)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result: dict[str, Any] = pool.submit(function, *args).result()
    return result


# --- in the child process -------------------------------------------------------------------


def _measure(
    source: Path,
    name: str,
    prompt: list[int],
    shape: dict[str, Any],
    params: SamplingParams,
    threads: int,
    extra_buffers: bool,
) -> dict[str, Any]:
    """Make type `name` from the f32 file, then time `shape["runs"]` runs after a warm-up."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # llama.cpp logs every tensor it loads
    llama_cpp.llama_backend_init()
    path = source if name == "f32" else _quantize(llama_cpp, source, name, threads)
    model = llama_cpp.llama_model_load_from_file(
        str(path).encode(), _model_params(llama_cpp, extra_buffers)
    )
    if not model:
        raise RuntimeError(f"llama.cpp could not load the {name} GGUF")
    context = llama_cpp.llama_init_from_model(
        model, _context_params(llama_cpp, prompt, shape, threads)
    )
    seeds = range(shape["runs"] + 1)  # the first run warms up; seeds as `single_stream`'s
    try:
        runs = [_run(llama_cpp, model, context, prompt, shape, params, seed) for seed in seeds]
    finally:
        llama_cpp.llama_free(context)
        llama_cpp.llama_model_free(model)
    return _summary(runs[1:] or runs, shape, threads, llama_cpp)


def _model_params(llama_cpp: Any, extra_buffers: bool) -> Any:
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0  # this baseline is the CPU's
    params.use_extra_bufts = extra_buffers  # AMX and repacked weights, where the CPU has them
    return params


def _context_params(llama_cpp: Any, prompt: list[int], shape: dict[str, Any], threads: int) -> Any:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = len(prompt) + shape["new_tokens"] + 1
    params.n_batch = params.n_ubatch = max(len(prompt), 1)
    params.n_threads = params.n_threads_batch = threads
    return params


def _quantize(llama_cpp: Any, source: Path, name: str, threads: int) -> Path:
    target = source.with_name(f"{name}.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[name]
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize the model to {name}")
    return target


def _sampler(llama_cpp: Any, model: Any, params: SamplingParams, seed: int, window: int) -> Any:
    """llama.cpp's sampler chain for `params`, with EOS banned (every run makes every token)."""
    vocab = llama_cpp.llama_model_get_vocab(model)
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    bias = (llama_cpp.llama_logit_bias * 1)(
        llama_cpp.llama_logit_bias(llama_cpp.llama_vocab_eos(vocab), float("-inf"))
    )
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    samplers = [llama_cpp.llama_sampler_init_logit_bias(n_vocab, 1, bias)]
    if params.temperature == 0:
        samplers.append(llama_cpp.llama_sampler_init_greedy())
    else:
        if params.top_k:
            samplers.append(llama_cpp.llama_sampler_init_top_k(params.top_k))
        if params.repetition_penalty != 1.0:  # over the whole context, as the engine's is
            # after top-k, as llama.h advises: over the whole vocabulary it is slow
            penalty = params.repetition_penalty
            samplers.append(
                llama_cpp.llama_sampler_init_penalties(n_vocab, window, penalty, 0.0, 0.0)
            )
        if params.top_p < 1.0:
            samplers.append(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        samplers.append(llama_cpp.llama_sampler_init_temp(params.temperature))
        samplers.append(llama_cpp.llama_sampler_init_dist(seed))
    for sampler in samplers:
        llama_cpp.llama_sampler_chain_add(chain, sampler)
    return chain


def _run(
    llama_cpp: Any,
    model: Any,
    context: Any,
    prompt: list[int],
    shape: dict[str, Any],
    params: SamplingParams,
    seed: int,
) -> dict[str, Any]:
    """One request alone: prefill, then one token a step; times as `single_stream` takes them."""
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(context), True)
    chain = _sampler(llama_cpp, model, params, seed, len(prompt) + shape["new_tokens"])
    for token in prompt:  # the repetition penalty sees the prompt, as the engine's does
        llama_cpp.llama_sampler_accept(chain, token)
    tokens: list[int] = []
    batch = (llama_cpp.llama_token * len(prompt))(*prompt)
    try:
        started = time.perf_counter()
        for _ in range(shape["new_tokens"]):
            if llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(batch, len(batch))):
                raise RuntimeError("llama_decode failed")
            tokens.append(llama_cpp.llama_sampler_sample(chain, context, -1))
            if len(tokens) == 1:
                first = time.perf_counter() - started
            batch = (llama_cpp.llama_token * 1)(tokens[-1])
        elapsed = time.perf_counter() - started
    finally:
        llama_cpp.llama_sampler_free(chain)
    return {"tokens": tokens, "elapsed_s": elapsed, "ttft_s": first}


def _summary(
    runs: list[dict[str, Any]], shape: dict[str, Any], threads: int, llama_cpp: Any
) -> dict[str, Any]:
    """`single_stream`'s numbers: tokens over the latency (prefill included), and the decode
    rate leaving the first token (the prefill) out."""
    made = shape["new_tokens"]
    rates = [made / r["elapsed_s"] for r in runs]
    decode = [(made - 1) / (r["elapsed_s"] - r["ttft_s"]) for r in runs if made > 1]
    return {
        "tokens_per_s": round(statistics.median(rates), 2),
        "decode_tokens_per_s": round(statistics.median(decode), 2) if decode else None,
        "best_tokens_per_s": round(max(rates), 2),
        "runs": [round(rate, 2) for rate in rates],
        "new_tokens": made,
        "threads": threads,
        "tokens": runs[-1]["tokens"],
        "version": f"llama-cpp-python {llama_cpp.__version__}",
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }
