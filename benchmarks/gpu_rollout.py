"""GPU rollout benchmark: the project's decode paths vs plain ``generate`` at the paper's shapes, and one GRPO step.

A model with random weights of one of three shapes (``--shape``; built from
its config: nothing is downloaded) decodes a batch of mixed-domain prompts from the real game
engine: scripted episodes of all five domains, each chat cut at a random
decision, rendered with the ChatML template, tokenized with a byte-level BPE
trained here on those chats, and cut to the last ``--prompt-tokens`` tokens
(left-padded to that width for ``generate``).  Every reply is exactly
``--new-tokens`` tokens, sampled at the paper's temperature / top-p / top-k.

Shapes: ``qwen3-4b`` (``Qwen/Qwen3-4B``'s config.json, a plain decoder),
``qwen3.5-4b`` (Qwen3.5's hybrid text model: three gated-delta-net
linear-attention layers to every full-attention one) and ``gemma4-e4b``
(Gemma 4's text model: five sliding-window layers to every full one, wider
heads in the full layers, key/value sharing in the last 18 layers,
per-layer embeddings, logit soft-capping).  The last two are the paper's
architectures at the sizes public descriptions of Qwen3.5-4B and Gemma 4
E4B give (their config.json cannot be downloaded here, so treat the sizes
as close, not exact); the decode work per token is what they fix.

Printed and written to the JSON (``--out``), each as soon as measured:

- the device copy bandwidth (a large device-to-device copy, read + write);
- the fast path (``sepo.policies.fast_decode``): compile and warm-up time,
  then prefill time, decode steps/s and decisions/s;
- the roofline of one decode step: the weights (the output projection
  included, the input embedding's unread rows excluded) plus the keys and
  values of every row's real tokens, read once at the measured bandwidth
  (and at the issue's nominal 3.0 TB/s); the achieved fraction is the
  roofline step time over the measured one;
- the standard loop (``sepo.policies.decode_loop``, the path ``ModelPolicy``
  takes for architectures the fast path does not cover: transformers'
  own cache of the model, each row stopping alone) on the same batch;
- transformers' continuous batching (``generate_batch``: paged attention,
  ``ContinuousBatchingConfig(allow_block_sharing=True)``) on the same batch,
  or the reason it refuses the architecture (recorded under ``failed``);
- plain ``generate`` (stock SDPA attention, dynamic cache) on the same batch
  and sampling, and the same-run ratio of each arm's decisions/s to it;
- one SEPO-GRPO optimizer step at that shape: LoRA r 16 / alpha 32 on
  q/k/v/o, groups of G = 4 replies of one prompt, TRL's GRPO loss (clipped
  ratio, k3 KL to the adapter-free reference with beta 0.1, per-sequence
  token mean) over the sampled sequences with stand-in rewards, micro-batched
  gradient accumulation, AdamW: step time and peak memory.

``--budget-seconds`` stops the run early (a phase that would not fit is
skipped, an overrunning one is interrupted) and still writes what was
measured.  Each arm (fast path, check, ``generate``, GRPO step) is guarded:
an error in one, such as running out of memory, is recorded under
``failed`` with the memory then in use, its memory is released, and the
next arm runs; ``memory`` holds the memory allocated as each arm starts, so
anything one arm leaves behind shows.  ``--tiny`` runs the same code at a
toy shape on the CPU (tests).

It imports only torch, transformers, tokenizers, peft and the project's game,
rollout and fast-decode modules, so it runs where the training stack (TRL,
DVC, Prefect, OpenSpiel, pydantic) is not installed.

The fast path (and its check against stock attention) runs only where
``sepo.policies.fast_decode.supports`` the model; elsewhere it is skipped
with that reason.

    python benchmarks/gpu_rollout.py --out benchmarks/results/gpu_rollout.json
    python benchmarks/gpu_rollout.py --shape qwen3.5-4b --out benchmarks/results/gpu_rollout_qwen35.json
    python benchmarks/gpu_rollout.py --tiny --shape gemma4-e4b --out /tmp/gpu_rollout_tiny.json
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts imports too

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    Gemma4ForCausalLM,
    Gemma4TextConfig,
    Qwen3_5ForCausalLM,
    Qwen3_5TextConfig,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from sepo.games import GAME_NAMES, make_game  # noqa: E402
from sepo.policies.decode_loop import decode  # noqa: E402
from sepo.policies.decoding import Sampler, StopRule  # noqa: E402
from sepo.policies.fast_decode import FastGenerator, supports  # noqa: E402
from sepo.policies.prefix_cache import PrefixCache  # noqa: E402
from sepo.policies.scripted import make_strategy, strategy_names  # noqa: E402
from sepo.rollout import EpisodeSpec, ScriptedAgent, play_episodes  # noqa: E402

#: Qwen/Qwen3-4B's config.json (tied embeddings, head_dim 128 with 32 query and 8 K/V heads)
QWEN3_4B = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                rms_norm_eps=1e-6, tie_word_embeddings=True,
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
TINY = dict(vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
            rms_norm_eps=1e-6, tie_word_embeddings=True)
#: Qwen3.5-4B's text model as public descriptions give it: 32 layers, every fourth full attention
#: (16 query / 4 K/V heads of 256), gated-delta-net linear attention elsewhere, vocabulary 248,320
QWEN35_4B = dict(vocab_size=248320, hidden_size=2560, intermediate_size=9216, num_hidden_layers=32,
                 num_attention_heads=16, num_key_value_heads=4, head_dim=256,
                 layer_types=["linear_attention"] * 3 + ["full_attention"], linear_conv_kernel_dim=4,
                 linear_key_head_dim=128, linear_value_head_dim=128, linear_num_key_heads=16,
                 linear_num_value_heads=32, max_position_embeddings=40960, rms_norm_eps=1e-6,
                 tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25})
#: Gemma 4 E4B's text model as public descriptions give it: 42 layers, five sliding (window 512, heads
#: of 256) to one full (heads of 512), 8 query / 2 K/V heads, K/V shared in the last 18 layers,
#: per-layer embeddings of 256, vocabulary 262,144, final logits soft-capped at 30
GEMMA4_E4B = dict(vocab_size=262144, vocab_size_per_layer_input=262144, hidden_size=2560, intermediate_size=10240,
                  num_hidden_layers=42, num_attention_heads=8, num_key_value_heads=2, head_dim=256,
                  global_head_dim=512, hidden_size_per_layer_input=256, sliding_window=512,
                  layer_types=["sliding_attention"] * 5 + ["full_attention"], num_kv_shared_layers=18,
                  final_logit_softcapping=30.0, max_position_embeddings=131072, rms_norm_eps=1e-6)
TINY_QWEN35 = dict(QWEN35_4B, vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, linear_key_head_dim=16,
                   linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
                   max_position_embeddings=1024)
TINY_GEMMA4 = dict(GEMMA4_E4B, vocab_size=4096, vocab_size_per_layer_input=4096, hidden_size=64,
                   intermediate_size=128, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
                   head_dim=16, global_head_dim=32, hidden_size_per_layer_input=8, sliding_window=16,
                   layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                   num_kv_shared_layers=3, max_position_embeddings=1024)
#: --shape: (full-size config, tiny config, config class, model class)
SHAPES = {"qwen3-4b": (QWEN3_4B, TINY, Qwen3Config, Qwen3ForCausalLM),
          "qwen3.5-4b": (QWEN35_4B, TINY_QWEN35, Qwen3_5TextConfig, Qwen3_5ForCausalLM),
          "gemma4-e4b": (GEMMA4_E4B, TINY_GEMMA4, Gemma4TextConfig, Gemma4ForCausalLM)}
NOMINAL_BANDWIDTH = 3.0e12  # the H100 reference, bytes/s
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


class BudgetExceeded(Exception):
    """The run reached ``--budget-seconds``."""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - STARTED)

    def arm(self) -> None:
        """Interrupt whatever runs when the budget is spent (Python code only; a CUDA call finishes first)."""
        def stop(signum, frame):
            raise BudgetExceeded

        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.01))


class Report:
    """The results so far, rewritten to ``path`` after every phase."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {**header, "phases": {}, "skipped": {}, "failed": {}, "memory": {}}

    def phase(self, name: str, values: dict[str, Any]) -> None:
        self.data["phases"][name] = values
        print(f"[{time.monotonic() - STARTED:6.1f} s] {name}: " + ", ".join(
            f"{k}={_short(v)}" for k, v in values.items()), flush=True)
        self.write()

    def skip(self, name: str, why: str) -> None:
        self.data["skipped"][name] = why
        print(f"[{time.monotonic() - STARTED:6.1f} s] {name}: skipped ({why})", flush=True)
        self.write()

    def fail(self, name: str, why: str) -> None:
        self.data["failed"][name] = why
        print(f"[{time.monotonic() - STARTED:6.1f} s] {name}: failed ({why})", flush=True)
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - STARTED, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- prompts ------------------------------------------------------------------------------------
def render(messages: list[dict[str, str]]) -> str:
    """ChatML with the assistant turn opened (the tiny model's and Qwen's template)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def game_chats(episodes: int, seed: int) -> list[list[dict[str, str]]]:
    """Chats of scripted episodes, domains in turn, each cut at a random decision (ending on a state)."""
    rng = random.Random(seed)
    chats = []
    for i in range(episodes):
        game = GAME_NAMES[i % len(GAME_NAMES)]
        names = strategy_names(game)
        opponent = make_strategy(game, names[(i // len(GAME_NAMES)) % len(names)])
        agent = ScriptedAgent(make_strategy(game, rng.choice(names)))
        spec = EpisodeSpec(make_game(game), opponent, "train", seed + i)
        messages = play_episodes([spec], agent)[0].messages
        decisions = [j for j, m in enumerate(messages) if m["role"] == "user"]
        chats.append(messages[:rng.choice(decisions) + 1])
    return chats


def train_bpe(texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE on the chats themselves (token ids stay below the model's vocabulary)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tokenizer


def prompt_batch(batch: int, prompt_tokens: int, vocab_size: int, seed: int) -> list[list[int]]:
    texts = [render(chat) for chat in game_chats(batch, seed)]
    tokenizer = train_bpe(texts, min(vocab_size, 4096))
    return [ids[-prompt_tokens:] for ids in (e.ids for e in tokenizer.encode_batch(texts))]


# -- measurements -------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def allocated_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.memory_allocated(device) / 2**30, 2)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def copy_bandwidth(device: torch.device, nbytes: int, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy, counting the read and the write."""
    source = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=device).fill_(1)
    target = torch.empty_like(source)
    target.copy_(source)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    sync(device)
    return 2 * nbytes * repeats / (time.perf_counter() - start)


def weight_bytes_read_per_step(model: torch.nn.Module) -> int:
    """Every parameter once (tied embeddings: the output projection reads them all), but not the input
    embedding when it is a separate matrix (a step reads only its batch's rows)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    if embedding is not model.get_output_embeddings().weight:
        total -= embedding.numel() * embedding.element_size()
    return total


def kv_bytes_per_token(shape: dict[str, Any], dtype: torch.dtype) -> int:
    """Keys and values one token adds: full and sliding layers that compute their own (not K/V-shared ones,
    not linear-attention ones), each at its own head width (Gemma 4's full layers are wider)."""
    layers = shape["num_hidden_layers"]
    types = layer_types(shape)
    first_shared = layers - (shape.get("num_kv_shared_layers") or 0)
    total = 0
    for kind in types[:first_shared]:
        if kind == "linear_attention":
            continue
        head = shape.get("global_head_dim") if kind == "full_attention" and shape.get("global_head_dim") else \
            shape["head_dim"]
        total += 2 * shape["num_key_value_heads"] * head * dtype.itemsize
    return total


def state_bytes_per_row(shape: dict[str, Any], dtype: torch.dtype) -> int:
    """The fixed-size recurrent state a linear-attention layer reads per row and step (Qwen3.5's gated delta
    net: one key-by-value matrix per value head), at the model's dtype; 0 for attention-only models."""
    linear = layer_types(shape).count("linear_attention")
    if not linear:
        return 0
    return linear * shape["linear_num_value_heads"] * shape["linear_key_head_dim"] * shape[
        "linear_value_head_dim"] * dtype.itemsize


def layer_types(shape: dict[str, Any]) -> list[str]:
    """The shape's per-layer attention kinds, its pattern repeated to the layer count."""
    pattern = shape.get("layer_types") or ["full_attention"]
    return (pattern * shape["num_hidden_layers"])[:shape["num_hidden_layers"]]


def roofline(model, shape: dict[str, Any], lengths: list[int], new_tokens: int,
             bandwidth: float) -> dict[str, float]:
    """Seconds per decode step if it only read the weights, each row's real keys/values and each row's
    recurrent state once (sliding windows are not subtracted: the default prompts fit in them)."""
    # step t (1..new_tokens-1) attends to the prompt and t generated tokens
    mean_context = sum(lengths) / len(lengths) + new_tokens / 2
    dtype = next(model.parameters()).dtype
    step_bytes = (weight_bytes_read_per_step(model) + len(lengths) * mean_context * kv_bytes_per_token(shape, dtype)
                  + len(lengths) * state_bytes_per_row(shape, dtype))
    return {"step_bytes": step_bytes, "mean_context_tokens": mean_context,
            "roofline_step_s": step_bytes / bandwidth,
            "nominal_roofline_step_s": step_bytes / NOMINAL_BANDWIDTH}


class Sampling:
    """The project's sampling settings from the arguments (``max_new_tokens``: ``--new-tokens`` unless given)."""

    def __init__(self, args: argparse.Namespace, new_tokens: int | None = None) -> None:
        self.temperature, self.top_p, self.top_k = args.temperature, args.top_p, args.top_k
        self.max_new_tokens, self.greedy = new_tokens or args.new_tokens, False


#: the decode arms whose decisions/s are divided by plain generate's
DECODE_ARMS = ("fast", "policy_loop", "continuous_batching")


def prefill_then_full(timed: Callable[[int], tuple[float, Any]], new_tokens: int,
                      device: torch.device) -> tuple[float, float, Any, float]:
    """(prefill s, full call s, the full call's output, decode step s) of ``timed(new tokens)``.

    The prefill is a call for one new token; the decode step is what the
    full call takes beyond it, per further token.  Peak memory counts the
    full call only.
    """
    prefill, _ = timed(1)
    reset_peak(device)
    seconds, out = timed(new_tokens)
    return prefill, seconds, out, (seconds - prefill) / (new_tokens - 1)


def run_fast(model, prompts: list[list[int]], args, device: torch.device, budget: Budget, report: Report,
             roof: dict[str, float]) -> list[list[int]]:
    """The fast path: first call (compile + graph capture), then timed calls; returns the last replies."""
    reset_peak(device)
    compile_error = None
    for compile in ([None, False] if not args.no_compile else [False]):
        generator = FastGenerator(model, Sampling(args), slots=len(prompts),
                                  capacity=args.prompt_tokens + args.new_tokens, seed=args.seed,
                                  compile=compile)
        start = time.perf_counter()
        try:
            for _ in range(args.warmup_calls):
                generator.generate(prompts)
            sync(device)
            break
        except (RuntimeError, AssertionError, ImportError, torch.OutOfMemoryError) as exc:
            if not generator.decoder.compiled:
                raise
            compile_error = f"{type(exc).__name__}: {str(exc)[:600]}"  # measure the eager step instead
            print(f"compiled step failed, running it eagerly: {compile_error}", flush=True)
            del generator
            release_memory(device)
    report.phase("fast_warmup", {"compiled": generator.decoder.compiled, "calls": args.warmup_calls,
                                 "compile_and_warmup_s": time.perf_counter() - start,
                                 "compile_error": compile_error, **compile_counters(),
                                 "slot_cache_gib": round(generator.decoder.cache.nbytes() / 2**30, 2)})
    runs, prefills, replies = [], [], []
    while len(runs) < args.repeats and (not runs or budget.left() > 3 * runs[-1] + 60):
        sync(device)
        start = time.perf_counter()
        generator.decoder.prefill(range(len(prompts)), prompts, [0] * len(prompts))
        sync(device)
        prefills.append(time.perf_counter() - start)
        start = time.perf_counter()
        replies = [ids for ids, _ in generator.generate(prompts)]
        sync(device)
        runs.append(time.perf_counter() - start)
    total, prefill = min(runs), min(prefills)
    decode_step = (total - prefill) / (args.new_tokens - 1)
    report.phase("fast", {
        "batch": len(prompts), "repeats": len(runs), "seconds_per_call": total, "prefill_s": prefill,
        "decode_step_s": decode_step, "decode_steps_per_s": 1 / decode_step,
        "decisions_per_s": len(prompts) / total, "tokens_per_reply": sum(map(len, replies)) / len(replies),
        "roofline_fraction": roof["roofline_step_s"] / decode_step,
        "nominal_roofline_fraction": roof["nominal_roofline_step_s"] / decode_step,
        "end_to_end_roofline_fraction": roof["roofline_step_s"] * args.new_tokens / total,
        "peak_memory_gib": peak_gib(device)})
    del generator
    release_memory(device)
    return replies


def compile_counters() -> dict[str, int]:
    """Graph breaks and CUDA-graph skips so far: either one costs the captured step its speed."""
    from torch._dynamo.utils import counters

    return {"graph_breaks": sum(counters["graph_break"].values()),
            "cudagraph_skips": counters["inductor"].get("cudagraph_skips", 0),
            "unique_graphs": counters["stats"].get("unique_graphs", 0)}


def release_memory(device: torch.device) -> None:
    """Drop compiled graphs (their memory pools hold the slot cache) and cached blocks."""
    import gc

    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def guarded(name: str, arm: Callable[[], Any], device: torch.device, report: Report) -> Any:
    """``arm()``, or None when it fails (recorded under ``failed``); its memory is released either way.

    The budget's interrupt is not a failure: it ends the run.
    """
    release_memory(device)
    report.data["memory"][name] = {"allocated_at_start_gib": allocated_gib(device)}
    try:
        return arm()
    except BudgetExceeded:
        raise
    except Exception as exc:  # one arm's error (an OOM) must not lose the other arms' results
        report.data["memory"][name]["allocated_at_failure_gib"] = allocated_gib(device)
        report.fail(name, f"{type(exc).__name__}: {str(exc)[:600]}")
        return None
    finally:
        release_memory(device)  # the failed arm's frames are gone by now, and with them its tensors


def check_against_stock(model, prompts: list[list[int]], args, device: torch.device, report: Report) -> None:
    """Teacher-forced logits of the fast path vs one stock SDPA forward pass, on a few rows, on the device."""
    from sepo.policies.fast_decode import FastDecoder

    rows = prompts[:4]
    forced = [[(97 * i + 13 * t) % 1000 + 10 for t in range(4)] for i in range(len(rows))]
    decoder = FastDecoder(model, slots=len(rows), capacity=args.prompt_tokens + len(forced[0]),
                          sampling=Sampling(args), compile=False)
    with torch.inference_mode():
        window = decoder.window_for(max(map(len, rows)) + len(forced[0]))
        ours = [decoder.prefill(range(len(rows)), rows, [0] * len(rows), window=window)]
        positions = torch.tensor([len(p) for p in rows], device=device)
        for t in range(len(forced[0])):
            tokens = torch.tensor([f[t] for f in forced], device=device)
            last = torch.zeros_like(tokens)
            ours.append(decoder.logits(tokens[:, None], (positions + t)[:, None], None, last, window))
        fast = torch.stack(ours, dim=1)
        model.set_attn_implementation("sdpa")
        stock = torch.stack([
            model(input_ids=torch.tensor([p + f], device=device)).logits[0, len(p) - 1:].float()
            for p, f in zip(rows, forced, strict=True)])
    report.phase("fast_check", {
        "rows": len(rows), "positions": fast.shape[1],
        "max_abs_logit_diff": (fast - stock).abs().max().item(),
        "logit_std": stock.std().item(),
        "argmax_agreement": (fast.argmax(-1) == stock.argmax(-1)).float().mean().item()})
    del decoder
    release_memory(device)


def run_policy_loop(model, prompts: list[list[int]], args, device: torch.device, report: Report,
                    roof: dict[str, float]) -> None:
    """The standard loop of ``ModelPolicy`` (``sepo.policies.decode_loop``) on the whole batch, no stop rule.

    Its ``PrefixCache`` needs of a tokenizer only the pad id: the prompts
    come as ids, and no system turn is shared (the rows are all different).
    """
    from types import SimpleNamespace

    model.set_attn_implementation("sdpa")
    prefixes = PrefixCache(model, SimpleNamespace(pad_token_id=0), room=args.new_tokens)
    prefixes.reuses_prefixes = False
    none = [None] * len(prompts)

    def timed(new_tokens: int) -> tuple[float, list[list[int]]]:
        sampler = Sampler(Sampling(args, new_tokens), args.seed, device)
        sync(device)
        start = time.perf_counter()
        out = decode(prefixes, sampler, StopRule(), prompts, none)
        sync(device)
        return time.perf_counter() - start, [ids for ids, _ in out]

    decode(prefixes, Sampler(Sampling(args, 2), args.seed, device), StopRule(), prompts[:4], none[:4])  # warm
    prefill, seconds, replies, decode_step = prefill_then_full(timed, args.new_tokens, device)
    report.phase("policy_loop", {
        "batch": len(prompts), "seconds_per_call": seconds, "prefill_s": prefill, "decode_step_s": decode_step,
        "decisions_per_s": len(prompts) / seconds, "tokens_per_reply": sum(map(len, replies)) / len(replies),
        "roofline_fraction": roof["roofline_step_s"] / decode_step, "peak_memory_gib": peak_gib(device)})


def run_continuous_batching(model, prompts: list[list[int]], args, device: torch.device, report: Report) -> None:
    """transformers' continuous batching (``generate_batch``, paged attention, prefix blocks shared).

    The manager is kept between calls (``persistent_manager``), so the
    timed call pays neither its cache allocation nor its warm-up; both are
    timed apart.  A request that comes back short or failed is an error:
    ``generate_batch`` logs errors and returns what finished.
    """
    from transformers import ContinuousBatchingConfig, GenerationConfig
    from transformers.generation.continuous_batching.utils import logger as cb_logger

    cb_logger.setLevel("ERROR")  # it warns on every call that a kept manager was sized for this workload
    cb_config = ContinuousBatchingConfig(allow_block_sharing=True, seed=args.seed)
    generation = GenerationConfig(do_sample=True, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                  max_new_tokens=args.new_tokens, eos_token_id=None, pad_token_id=0)

    def timed(new_tokens: int) -> tuple[float, list[list[int]]]:
        sync(device)
        start = time.perf_counter()
        out = model.generate_batch(inputs=prompts, generation_config=generation, continuous_batching_config=cb_config,
                                   persistent_manager=True, max_new_tokens=new_tokens)
        sync(device)
        seconds = time.perf_counter() - start
        replies = [list(result.generated_tokens) for result in out.values() if result.error is None]
        if len(replies) != len(prompts) or any(len(r) != new_tokens for r in replies):
            raise RuntimeError(f"generate_batch returned {len(replies)} complete replies of {len(prompts)} "
                               f"(lengths {sorted({len(r) for r in replies})}, {new_tokens} asked)")
        return seconds, replies

    try:
        first, _ = timed(args.new_tokens)  # builds the manager: cache allocation, warm-up, graph capture
        prefill, seconds, replies, decode_step = prefill_then_full(timed, args.new_tokens, device)
    finally:
        model.destroy_cached_continuous_batching_manager()
    report.phase("continuous_batching", {
        "batch": len(prompts), "first_call_s": first, "seconds_per_call": seconds, "prefill_s": prefill,
        "decode_step_s": decode_step, "decisions_per_s": len(prompts) / seconds,
        "tokens_per_reply": sum(map(len, replies)) / len(replies), "peak_memory_gib": peak_gib(device)})


def left_padded(prompts: list[list[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask


def run_generate(model, prompts: list[list[int]], args, device: torch.device, report: Report,
                 roof: dict[str, float]) -> None:
    """Plain ``generate``: stock SDPA attention, dynamic cache, no compile; its prefill timed apart."""
    model.set_attn_implementation("sdpa")
    ids, mask = (t.to(device) for t in left_padded(prompts, args.prompt_tokens, 0))
    sampling = dict(do_sample=True, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                    pad_token_id=0)

    def timed(new_tokens: int) -> tuple[float, int]:
        sync(device)
        start = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, **sampling)
        sync(device)
        return time.perf_counter() - start, out.shape[1] - ids.shape[1]

    with torch.inference_mode():
        model.generate(input_ids=ids[:, -8:], attention_mask=mask[:, -8:].clone().fill_(1), max_new_tokens=2,
                       **sampling)  # kernels and allocator warm
        prefill, seconds, tokens, decode_step = prefill_then_full(timed, args.new_tokens, device)
    decisions = len(prompts) / seconds
    report.phase("hf_generate", {
        "batch": len(prompts), "seconds_per_call": seconds, "prefill_s": prefill,
        "decode_step_s": decode_step,
        "decisions_per_s": decisions, "tokens_per_reply": tokens,
        "roofline_fraction": roof["roofline_step_s"] / decode_step,
        "end_to_end_roofline_fraction": roof["roofline_step_s"] * args.new_tokens / seconds,
        "peak_memory_gib": peak_gib(device),
        **{f"{arm}_over_generate": report.data["phases"][arm]["decisions_per_s"] / decisions
           for arm in DECODE_ARMS if arm in report.data["phases"]},
        **{f"{arm}_over_generate_decode_step": decode_step / report.data["phases"][arm]["decode_step_s"]
           for arm in DECODE_ARMS if "decode_step_s" in report.data["phases"].get(arm, {})}})


def grpo_step(model, prompts: list[list[int]], replies: list[list[int]], args, device: torch.device,
              report: Report) -> None:
    """One SEPO-GRPO optimizer step on the sampled sequences (see the module doc)."""
    from peft import LoraConfig, get_peft_model

    model.set_attn_implementation("sdpa")
    policy = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
                                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                              task_type="CAUSAL_LM"))
    policy.train()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    new = args.new_tokens
    sequences = [p + r for p, r in zip(prompts, replies, strict=True)]
    ids, mask = left_padded(sequences, args.prompt_tokens + new, 0)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generator = torch.Generator().manual_seed(args.seed)
    rewards = torch.randn(len(prompts), generator=generator).to(device)  # stand-ins: the cost is the same
    grouped = rewards.view(-1, args.group_size)
    advantages = ((grouped - grouped.mean(-1, keepdim=True)).flatten() / (rewards.std() + 1e-4))
    targets = ids[:, -new:]

    def completion_logprobs(rows: slice) -> torch.Tensor:
        logits = policy(input_ids=ids[rows], attention_mask=mask[rows], position_ids=positions[rows],
                        logits_to_keep=new + 1).logits[:, :-1].float() / args.temperature
        return logits.gather(-1, targets[rows, :, None])[..., 0] - torch.logsumexp(logits, dim=-1)

    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    micro = args.train_micro_batch
    for begin in range(0, len(prompts), micro):
        rows = slice(begin, begin + micro)
        with torch.no_grad(), policy.disable_adapter():
            reference = completion_logprobs(rows)
        logprobs = completion_logprobs(rows)
        ratio = torch.exp(logprobs - logprobs.detach())  # on-policy: old log-probs are the current ones
        advantage = advantages[rows, None]
        surrogate = torch.min(ratio * advantage, ratio.clamp(1 - 0.2, 1 + 0.2) * advantage)
        kl = torch.exp(reference - logprobs) - (reference - logprobs) - 1
        loss = (-(surrogate - 0.1 * kl)).mean(-1).sum() / len(prompts)
        loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync(device)
    report.phase("grpo_step", {
        "sequences": len(prompts), "group_size": args.group_size, "tokens_per_sequence": ids.shape[1],
        "micro_batch": micro, "lora_r": args.lora_r,
        "trainable_parameters": sum(p.numel() for p in trainable), "step_s": time.perf_counter() - start,
        "grad_norm": float(grad_norm), "peak_memory_gib": peak_gib(device)})


# -- main ---------------------------------------------------------------------------------------
def build_model(name: str, tiny: bool, device: torch.device, dtype: torch.dtype):
    """Random weights of shape ``name`` (``SHAPES``), created directly on the device in ``dtype``."""
    full, small, config_class, model_class = SHAPES[name]
    shape = dict(small if tiny else full)
    if "layer_types" in shape:
        shape["layer_types"] = layer_types(shape)
    config = config_class(**shape, pad_token_id=0, eos_token_id=2, bos_token_id=None)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = 0
    return model.eval()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gpu_rollout.json", help="JSON results path")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-4b", help="model shape (default qwen3-4b)")
    parser.add_argument("--tiny", action="store_true", help="toy size of --shape on the CPU (smoke test)")
    parser.add_argument("--batch", type=int, help="concurrent episodes (default 256; tiny 8)")
    parser.add_argument("--prompt-tokens", type=int, help="prompt width (default 300; tiny 48)")
    parser.add_argument("--new-tokens", type=int, help="tokens per decision (default 64; tiny 8)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (the best counts)")
    parser.add_argument("--warmup-calls", type=int, default=2, help="untimed first calls (compile, capture)")
    parser.add_argument("--no-compile", action="store_true", help="run the fast path's step eagerly")
    parser.add_argument("--skip-generate", action="store_true", help="no plain generate baseline")
    parser.add_argument("--skip-grpo", action="store_true", help="no GRPO step")
    parser.add_argument("--skip", action="append", default=[], choices=("policy_loop", "continuous_batching"),
                        help="leave out this decode arm (repeatable)")
    parser.add_argument("--group-size", type=int, default=4, help="G, replies per GRPO group")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank of the GRPO step (alpha = 2 r)")
    parser.add_argument("--train-micro-batch", type=int, help="sequences per backward (default 8; tiny 4)")
    parser.add_argument("--budget-seconds", type=float, default=420.0,
                        help="stop early past this, writing what was measured (default 420)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = (8, 48, 8, 4) if args.tiny else (256, 300, 64, 8)
    names = ("batch", "prompt_tokens", "new_tokens", "train_micro_batch")
    for name, default in zip(names, defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.batch % args.group_size:
        parser.error("--batch must be a multiple of --group-size")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_seconds)
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if args.tiny:
        torch.set_num_threads(1)  # toy matrices: more threads only contend
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    full, small, _, _ = SHAPES[args.shape]
    shape = small if args.tiny else full
    report = Report(Path(args.out), {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(),
        "shape": f"tiny {args.shape}" if args.tiny else args.shape, "model_config": shape, "dtype": str(dtype),
        "batch": args.batch, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
        "sampling": {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k},
        "budget_seconds": args.budget_seconds})
    budget.arm()
    try:
        prompts = prompt_batch(args.batch, args.prompt_tokens, shape["vocab_size"], args.seed)
        lengths = [len(p) for p in prompts]
        start = time.perf_counter()
        model = build_model(args.shape, args.tiny, device, dtype)
        sync(device)
        bandwidth = copy_bandwidth(device, 2**31 if device.type == "cuda" else 2**26)
        roof = roofline(model, shape, lengths, args.new_tokens, bandwidth)
        report.phase("setup", {
            "model_build_s": time.perf_counter() - start,
            "parameters": sum(p.numel() for p in model.parameters()),
            "weight_bytes_read_per_step": weight_bytes_read_per_step(model),
            "kv_bytes_per_token": kv_bytes_per_token(shape, dtype),
            "state_bytes_per_row": state_bytes_per_row(shape, dtype),
            "prompt_tokens_mean": sum(lengths) / len(lengths), "prompt_tokens_min": min(lengths),
            "copy_bandwidth_gb_s": bandwidth / 1e9, **roof})
        replies = None
        if supports(model):
            replies = guarded("fast", lambda: run_fast(model, prompts, args, device, budget, report, roof),
                              device, report)
            guarded("fast_check", lambda: check_against_stock(model, prompts, args, device, report), device,
                    report)
        else:
            for arm in ("fast", "fast_check"):
                report.skip(arm, "sepo.policies.fast_decode.supports() is False for this architecture")
        for arm, run in (("policy_loop", lambda: run_policy_loop(model, prompts, args, device, report, roof)),
                         ("continuous_batching", lambda: run_continuous_batching(model, prompts, args, device,
                                                                                 report))):
            if arm in args.skip:
                report.skip(arm, f"--skip {arm}")
            else:
                guarded(arm, run, device, report)
        # generate is expected at most 30x slower than the quickest arm measured
        quickest = min((report.data["phases"][arm]["seconds_per_call"] for arm in DECODE_ARMS
                        if arm in report.data["phases"]), default=0.0)
        if args.skip_generate:
            report.skip("hf_generate", "--skip-generate")
        elif budget.left() < 30 * quickest + 30:
            report.skip("hf_generate", f"budget: {budget.left():.0f} s left")
        else:
            guarded("hf_generate", lambda: run_generate(model, prompts, args, device, report, roof), device,
                    report)
        if args.skip_grpo:
            report.skip("grpo_step", "--skip-grpo")
        elif budget.left() < 60 and not args.tiny:
            report.skip("grpo_step", f"budget: {budget.left():.0f} s left")
        else:
            if replies is None:  # the fast arm failed: stand-in replies cost the step the same
                generator = torch.Generator().manual_seed(args.seed)
                replies = torch.randint(3, shape["vocab_size"], (len(prompts), args.new_tokens),
                                        generator=generator).tolist()
            guarded("grpo_step", lambda: grpo_step(model, prompts, replies, args, device, report), device,
                    report)
    except BudgetExceeded:
        report.data["stopped"] = f"budget of {args.budget_seconds:.0f} s spent"
        print(f"stopped: {report.data['stopped']}", flush=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        report.write()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
