"""The typed schema of ``params.yaml``, validated at the start of every stage.

Every stage and command calls ``load_params`` before it touches an output, so
a wrong key or value stops the run with one line naming the key and the
allowed values (``ConfigError``; the CLI turns it into exit code 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from sepo.errors import ConfigError, unknown_name
from sepo.game_settings import check_game_section
from sepo.games import GAME_NAMES, make_game
from sepo.games.protocol import POOLS, Game, Strategy, adapts_to_agent
from sepo.params_errors import first_error_line
from sepo.policies.scripted import make_strategy, strategy_names
from sepo.reward import PenaltyMode, ScaleRewards


class _Strict(BaseModel):
    # allow_inf_nan: no knob of the pipeline means anything at inf or nan (a temperature of inf is noise)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _unique(values: list[Any]) -> list[Any]:
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ValueError(f"{repeated[0]!r} is listed twice; each entry may appear once")
    return values


#: a list whose entries are distinct (a pool naming an opponent twice would weight it double)
Unique = AfterValidator(_unique)
#: seeds are hashed into 63-bit stream seeds or given to torch, both of which take 64 bits
SEED_BITS = 64
#: seeds that transformers' ``set_seed`` also gives to numpy's legacy seeding, which takes 32 bits
TRAINER_SEED_BITS = 32

#: transformers' ``SchedulerType`` values that build from params alone (a test holds this list to the enum):
#: cosine_with_min_lr, cosine_warmup_with_min_lr and warmup_stable_decay need ``lr_scheduler_kwargs``,
#: which params do not set, so they would fail only when training starts.  Listed here rather than
#: imported because importing transformers costs seconds in every stage that only reads params.
SFT_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                  "inverse_sqrt", "reduce_lr_on_plateau", "greedy")
#: ``sepo.best_response_mixture``: which best responses an adaptive opponent plays (``sepo.training.adaptive``)
BEST_RESPONSE_MIXTURES = ("latest", "average")
#: how SEPO's group dataset weights opponents (sepo.training.groups): each opponent alike, or each pool alike
GROUP_WEIGHTINGS = ("opponent", "pool")
#: report rows that come from a model (``stages/evaluate.py --policy``); the others are eval.references roles
MODEL_ROWS = ("base", "sft", "sepo")
#: a Dask scheduler address: protocol://host[:port]
DASK_PROTOCOLS = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"
#: the default profile, params.yaml as committed; the others are profiles/NAME.yaml
DEFAULT_PROFILE = "tiny"


def known_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    """``tiny`` and every profile file's name."""
    return sorted({DEFAULT_PROFILE, *(p.stem for p in directory.glob("*.yaml"))})


class Weights(_Strict):
    """Penalty weights λ of one domain (SPEC section 4)."""

    exploit: float = Field(ge=0, description="λe, on the scaled exploit-pool advantage")
    collusion: float = Field(ge=0, description="λc, on the collusion rate")
    externality: float = Field(ge=0, description="λx, on the externality")


class Pools(_Strict):
    """Opponent names per pool; each pool must name at least one opponent."""

    train: Annotated[list[str], Unique] = Field(min_length=1)
    exploit: Annotated[list[str], Unique] = Field(min_length=1)
    collusive: Annotated[list[str], Unique] = Field(min_length=1)
    shift: Annotated[list[str], Unique] = Field(min_length=1)

    def of(self, pool: str) -> list[str]:
        return getattr(self, pool)


class GameParams(_Strict):
    """One domain: rules, opponent pools, demonstrators and weights."""

    rounds: int = Field(gt=0, description="rounds (hands) per episode")
    max_payoff: float = Field(gt=0, description="payoff scale P; s = 3 / P")
    settings: dict[str, Any] = Field(default_factory=dict, description="domain-specific rule settings")
    pools: Pools
    strategies: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-strategy overrides of its knobs (e.g. probabilities)")
    demonstrators: dict[str, float] = Field(description="SFT demonstrator mixture: name -> share")
    penalty_weights: Weights = Field(description="λ used in the SEPO training reward")
    report_weights: Weights = Field(description="λ used for the reported safety J")

    @field_validator("demonstrators")
    @classmethod
    def _shares_sum_to_one(cls, shares: dict[str, float]) -> dict[str, float]:
        if any(s < 0 for s in shares.values()):
            raise ValueError("shares must be non-negative")
        if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"shares must sum to 1, got {sum(shares.values()):.4f}")
        return shares


class EvalParams(_Strict):
    """Evaluation of a policy against every pool."""

    episodes: int = Field(gt=0, description="episodes per opponent")
    game_episodes: dict[str, PositiveInt] = Field(
        default_factory=dict, description="episodes per opponent in particular domains instead, for every "
        "row alike (so rows stay paired): where episodes vary more, e.g. negotiation_items' deals, more "
        "of them buy the same interval width")
    row_episodes: dict[str, PositiveInt] = Field(
        default_factory=dict, description="episodes per opponent of particular report rows instead, in "
        "every domain (e.g. base: the untrained model writes max_new_tokens of noise at every decision)")
    seed: int = Field(ge=0, lt=2**SEED_BITS, description="base seed of the evaluation episodes")
    bootstrap_samples: int = Field(gt=0, description="bootstrap resamples for the confidence intervals")
    confidence: float = Field(gt=0, lt=1, description="confidence level of the intervals")
    unreached_infoset_replies: int = Field(
        default=8, gt=0, description="a strategy audit's sampled replies at an information set the "
        "evaluation episodes never reached (Kuhn: SPEC section 4's N)")
    num_threads: int = Field(default=0, ge=0, description="torch CPU threads of a model evaluation; 0 keeps "
                             "torch's default (one is fastest for the tiny model beside other stages)")
    references: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="scripted reference rows of the report, per domain: role (e.g. 'equilibrium', "
        "'reciprocal') -> strategy name; evaluated like any policy")

    def episodes_for(self, row: str, game: str) -> int:
        """Episodes per opponent of report row ``row`` in ``game``: ``row_episodes``, else
        ``game_episodes``, else ``episodes``."""
        return self.row_episodes.get(row, self.game_episodes.get(game, self.episodes))


class SFTDatasetParams(_Strict):
    """One released SFT dataset: its domains (equal shares of examples) and split sizes."""

    games: Annotated[list[str], Unique] = Field(min_length=1, description="domains mixed in this dataset, "
                                                "equal example shares")
    train_examples: int = Field(gt=0, description="examples (decisions) in the train split")
    valid_examples: int = Field(gt=0, description="examples (decisions) in the valid split")


class DataParams(_Strict):
    """The ``generate`` stage: demonstrator episodes written as SFT datasets (SPEC section 6)."""

    seed: int = Field(ge=0, lt=2**SEED_BITS, description="base seed of every episode and of the row order")
    zstd_level: int = Field(ge=1, le=22, description="Parquet zstd compression level")
    datasets: dict[str, SFTDatasetParams] = Field(
        min_length=1, description="dataset name (a folder and a Hub config name) -> its contents")


class ValidateParams(_Strict):
    """The ``validate`` stage: Great Expectations checks of the SFT datasets."""

    max_tokens: int = Field(gt=0, description="budget for prompt + completion, in approximate tokens")
    share_tolerance: float = Field(gt=0, lt=1, description="allowed gap between a demonstrator's "
                                   "share of its domain's examples and its mixture share")
    unexpected_examples: int = Field(ge=0, description="unexpected values quoted per failed expectation")


class TinyModelParams(_Strict):
    """Shape of the tiny Qwen3 that the ``base_model`` stage builds when ``model.base`` is ``tiny``."""

    vocab_size: int = Field(gt=259, description="BPE vocabulary target: 256 bytes + 3 special tokens + merges")
    max_token_length: int = Field(gt=0, description="longest token, in characters (merges may cross spaces)")
    hidden_size: int = Field(gt=0, description="width of the residual stream")
    num_hidden_layers: int = Field(gt=0, description="decoder layers")
    num_attention_heads: int = Field(gt=0, description="query heads; hidden_size must be a multiple")
    num_key_value_heads: int = Field(gt=0, description="key/value heads (grouped-query attention)")
    intermediate_size: int = Field(gt=0, description="width of the MLP")
    max_position_embeddings: int = Field(gt=0, description="longest sequence the rotary embedding is set up for")
    tie_word_embeddings: bool = Field(description="share the input embedding and the output projection")

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelParams:
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads, and that of "
                             "num_key_value_heads")
        return self


class ModelParams(_Strict):
    """The ``base_model`` stage: the policy's starting point (SPEC section 7)."""

    base: str = Field(description="'tiny' (built by the pipeline, no network) or a Hugging Face Hub id "
                      "such as Qwen/Qwen3.5-4B")
    revision: str = Field(description="Hub revision (branch, tag or commit) recorded for a Hub id")
    trust_remote_code: bool = Field(description="let transformers run Python code shipped with a Hub model")
    seed: int = Field(ge=0, lt=2**SEED_BITS, description="seed of the tiny model's random initialisation")
    tiny: TinyModelParams


class LoraParams(_Strict):
    """LoRA adapter settings (PEFT)."""

    r: int = Field(gt=0, description="adapter rank")
    alpha: float = Field(gt=0, description="scaling numerator: updates are scaled by alpha / r")
    dropout: float = Field(ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | str = Field(
        min_length=1, description="module-name suffixes that get adapters, or one regular expression that "
        "PEFT full-matches against module paths (Gemma 4: only the language model's projections, since its "
        "vision and audio towers have q_proj/k_proj/v_proj/o_proj wrappers PEFT cannot adapt)")

    @field_validator("target_modules")
    @classmethod
    def _pattern_compiles(cls, targets: list[str] | str) -> list[str] | str:
        if isinstance(targets, str):
            try:
                re.compile(targets)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
            return targets
        return _unique(targets)

    def peft_config(self):
        """PEFT's ``LoraConfig`` for a causal LM with these settings."""
        from peft import LoraConfig

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          task_type="CAUSAL_LM")


class SFTParams(_Strict):
    """The ``sft`` stage: TRL's SFTTrainer on the SFT datasets (SPEC section 6)."""

    datasets: Annotated[list[str], Unique] = Field(min_length=1, description="names under data.datasets to "
                                                   "train on")
    corpus: Literal["episodes", "decisions"] = Field(
        description="'episodes': one example per episode, its last decision, whose chat holds every earlier "
        "reply (only with the whole-sequence loss); 'decisions': every decision's example")
    examples_per_domain: dict[str, int] = Field(
        description="train examples taken per domain (every domain of the datasets, a positive count), in "
        "the order of its dataset's shuffled file; beyond the file's examples they repeat")
    valid_examples_per_domain: int = Field(ge=0, description="valid examples per domain for the eval loss")
    method: Literal["full", "lora"] = Field(description="full fine-tuning (the tiny model, whose base is "
                                            "random) or LoRA adapters (Hub models)")
    completion_only_loss: bool = Field(description="loss on the completion only; false: on the whole "
                                       "sequence, the tiny model's pre-training")
    lora: LoraParams
    learning_rate: float = Field(gt=0, description="peak AdamW learning rate")
    lr_scheduler_type: Literal[SFT_SCHEDULERS] = Field(description="transformers scheduler name, e.g. cosine")
    warmup_ratio: float = Field(ge=0, lt=1, description="share of the steps spent warming up linearly")
    max_steps: int = Field(description="optimizer steps (> 0); -1: run num_train_epochs")
    num_train_epochs: float = Field(gt=0, description="epochs when max_steps is -1")
    per_device_train_batch_size: int = Field(gt=0, description="examples per forward pass")
    gradient_accumulation_steps: int = Field(gt=0, description="forward passes per optimizer step")
    max_length: int = Field(gt=0, description="token cap of prompt + completion (longer rows are truncated)")
    bf16: bool = Field(description="bf16 mixed precision (GPU only)")
    gradient_checkpointing: bool = Field(description="recompute activations to save memory (slower)")
    logging_steps: int = Field(gt=0, description="steps between loss-curve points")
    eval_steps: int = Field(gt=0, description="steps between validation losses")
    save_steps: int = Field(gt=0, description="steps between checkpoints")
    save_total_limit: int = Field(gt=0, description="checkpoints kept")
    num_threads: int = Field(ge=0, description="torch CPU threads (per process); 0 keeps torch's default")
    cpu_processes: int = Field(default=1, ge=1, le=64, description="data-parallel CPU processes of the sft "
                               "stage on a machine without a GPU (gloo DDP; each trains "
                               "per_device_train_batch_size examples a step); 1: one process")
    seed: int = Field(ge=0, lt=2**TRAINER_SEED_BITS, description="seed of initialisation-independent "
                      "randomness: order, dropout (transformers' set_seed gives it to numpy: 32 bits)")

    @field_validator("max_steps")
    @classmethod
    def _positive_or_epochs(cls, steps: int) -> int:
        if steps <= 0 and steps != -1:
            raise ValueError(f"expected a positive step count, or -1 for num_train_epochs; got {steps}")
        return steps

    @model_validator(mode="after")
    def _episodes_need_whole_sequence_loss(self) -> SFTParams:
        if self.corpus == "episodes" and self.completion_only_loss:
            raise ValueError("corpus 'episodes' trains on every reply of an episode through the whole-sequence "
                             "loss; with completion_only_loss true use corpus 'decisions'")
        return self


class GenerationParams(_Strict):
    """How a model policy samples its replies (evaluation and rollouts)."""

    temperature: float = Field(gt=0, description="sampling temperature")
    top_p: float = Field(gt=0, le=1, description="nucleus sampling mass")
    top_k: int = Field(ge=0, description="top-k sampling; 0: off")
    max_new_tokens: int = Field(gt=0, description="token cap of one reply")
    greedy: bool = Field(description="take the most likely token instead of sampling")
    batch_size: int = Field(gt=0, description="most decisions generated in one batched call")
    max_active_episodes: int = Field(gt=0, description="most episodes of an evaluation in play at once (waves "
                                     "of consecutive episodes): a model keeps the keys/values of every "
                                     "running episode, so this bounds the memory")
    seed: int = Field(ge=0, lt=2**SEED_BITS, description="seed of the policy's sampling generator")
    fast_decode: Literal["auto", "on", "off"] = Field(
        description="the resident-slot decode loop of sepo.policies.fast_decode for evaluation: auto = on a "
        "GPU for the decoders it supports (Qwen3, Qwen2, Llama); on = wherever it is supported (CPU too)")
    fast_decode_slots: int = Field(gt=0, description="episodes whose keys/values stay resident at once; "
                                   "a call with more decisions runs in chunks of this size")
    fast_decode_capacity: int = Field(gt=1, description="tokens per slot; a decision whose prompt plus "
                                      "max_new_tokens does not fit takes the standard loop")


class SFTValidityParams(_Strict):
    """The ``sft_validity`` stage: invalid-action rate of the base and SFT policies per domain."""

    min_decisions: int = Field(gt=0, description="at least this many agent decisions per domain, inside "
                               "full episodes against every pool's opponents")
    seed: int = Field(ge=0, lt=2**SEED_BITS, description="base seed of the episodes")
    copy_probe_examples: int = Field(default=40, gt=0, description="round-4 negotiation-items validation "
                                     "examples the copy probe scores (sepo/copy_probe.py)")




class SepoParams(_Strict):
    """The ``sepo`` stage: SEPO-GRPO from the SFT policy, one run per domain (SPEC section 5)."""

    max_steps: int = Field(gt=0, description="optimizer steps (one GRPO batch each)")
    save_steps: int = Field(gt=0, description="steps between checkpoints (LoRA adapter, optimizer, RNG "
                            "state); the last step is always saved")
    groups_per_step: int = Field(gt=0, description="GRPO groups per step; a group is G episodes of one "
                                 "opponent with one environment seed")
    seeds_per_opponent: int = Field(gt=0, description="environment seeds per opponent in the group dataset "
                                    "(it is cycled when the run needs more groups)")
    selection_episodes: int = Field(gt=0, description="episodes per training-pool opponent with which each "
                                    "checkpoint is scored for model selection")
    best_response_refresh_steps: int = Field(
        gt=0, description="k: an opponent that adapts to the agent (Kuhn's BestResponse, when a pool lists it) "
        "is re-bound to the current model's played table every k steps, measured on that step's other "
        "rollouts (step 0 measures the SFT model)")
    best_response_mixture: Literal[BEST_RESPONSE_MIXTURES] = Field(
        description="which best responses such an opponent plays: latest, the best response to the table of "
        "the latest refresh; average (fictitious play), each episode one of the best responses of every "
        "refresh so far, drawn uniformly from the episode's seed")
    group_weighting: Literal[GROUP_WEIGHTINGS] = Field(
        default="opponent", description="opponent: every opponent of the training pools gets seeds_per_opponent "
        "groups (the paper's G rollouts per opponent); pool: every pool gets the same number of groups, split "
        "among its opponents, so the expected reward weighs payoff, exploit and collusion as safety J does "
        "(sepo/training/groups.py)")
    lora: LoraParams
    num_threads: int = Field(ge=0, description="torch CPU threads; 0 keeps torch's default")
    seed: int = Field(ge=0, lt=2**TRAINER_SEED_BITS, description="seed of the adapter init, the group order "
                      "and every rollout (transformers' set_seed gives it to numpy: 32 bits)")


class PenaltyParams(_Strict):
    """How the SEPO penalties are credited (SPEC section 5: the ablation's knob)."""

    mode: PenaltyMode = Field(description="per_rollout (SEPO), constant (batch mean: cancels in centring), "
                              "auxiliary (from separate episodes), none (payoff only)")


class GRPOGameOverrides(_Strict):
    """Per-domain exceptions to the GRPO hyperparameters (the paper's Kuhn run)."""

    learning_rate: float | None = Field(default=None, gt=0, description="overrides grpo.learning_rate")
    beta: float | None = Field(default=None, ge=0, description="overrides grpo.beta")


class GRPOParams(_Strict):
    """TRL GRPOTrainer hyperparameters; sampling comes from ``generation``."""

    num_generations: int = Field(gt=1, description="G: rollouts per group")
    scale_rewards: ScaleRewards = Field(description="advantage scaling: group std (GRPO), batch std (keeps "
                                        "the λ weighting between pools), none")
    learning_rate: float = Field(gt=0, description="AdamW learning rate, constant")
    beta: float = Field(ge=0, description="KL coefficient to the reference (SFT) policy")
    epsilon: float = Field(gt=0, lt=1, description="PPO-style ratio clip")
    max_grad_norm: float = Field(gt=0, description="gradient clipping norm")
    game_overrides: dict[str, GRPOGameOverrides] = Field(
        default_factory=dict, description="domain -> hyperparameters that differ for it")
    use_vllm: bool = Field(default=False, description="passed to TRL: it starts vLLM (the 'gpu' extra) and "
                           "syncs the weights into it every step; the lockstep rollouts still sample with the "
                           "training model unless a policy_factory uses trainer.vllm_generation")
    vllm_mode: Literal["colocate", "server"] = Field(
        default="colocate", description="with use_vllm: 'colocate' runs vLLM inside each training process, "
        "'server' talks to a separately started `trl vllm-serve`")

    def for_game(self, game: str) -> GRPOParams:
        """These params with ``game``'s overrides applied."""
        overrides = self.game_overrides.get(game)
        if overrides is None:
            return self
        return self.model_copy(update=overrides.model_dump(exclude_none=True))


class AblationRun(_Strict):
    """One arm of the penalty-mode ablation."""

    mode: PenaltyMode
    scale_rewards: ScaleRewards
    add_exploit: Annotated[list[str], Unique] = Field(
        default_factory=list, description="strategies added to the exploit pool for this arm's training (e.g. "
        "[BestResponse], SPEC section 8); the arm runs on the ablation domains that have them all and is "
        "evaluated on the default pools, like every arm")
    best_response_mixture: Literal[BEST_RESPONSE_MIXTURES] | None = Field(
        default=None, description="this arm's sepo.best_response_mixture (its name then ends in -latest or "
        "-average); null: the sepo section's")
    group_weighting: Literal[GROUP_WEIGHTINGS] | None = Field(
        default=None, description="this arm's sepo.group_weighting (its name then ends in -opponent_weighted "
        "or -pool_weighted); null: the sepo section's")

    @property
    def name(self) -> str:
        """The arm's name in the ablation's files: ``mode-scaling``, then ``-snake_case`` of each strategy it adds
        (``per_rollout-batch-best_response``), then ``-<mixture>`` when it sets its own best-response mixture and
        ``-<weighting>_weighted`` when it sets its own group weighting."""
        added = "".join("-" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in self.add_exploit)
        mixture = f"-{self.best_response_mixture}" if self.best_response_mixture else ""
        weighting = f"-{self.group_weighting}_weighted" if self.group_weighting else ""
        return f"{self.mode}-{self.scale_rewards}{added}{mixture}{weighting}"


class AblationParams(_Strict):
    """The ``ablation`` stage: short SEPO runs per penalty mode from the same SFT policy and seed."""

    games: Annotated[list[str], Unique] = Field(min_length=1, description="domains of the ablation")
    runs: Annotated[list[AblationRun], Unique] = Field(min_length=1, description="(penalty mode, advantage "
                                                       "scaling) arms")
    max_steps: int = Field(gt=0, description="optimizer steps per run")
    eval_episodes: int = Field(gt=0, description="evaluation episodes per opponent of the final policy")
    game_eval_episodes: dict[str, PositiveInt] = Field(
        default_factory=dict, description="evaluation episodes per opponent in particular domains instead, "
        "for every arm alike (so arms stay paired): where the arms' differences are small beside the "
        "episodes' spread")
    workers: int = Field(gt=0, description="arms trained at once, each in its own process (1: in the "
                         "stage's process, as on one GPU)")
    replicate_arms: Annotated[list[str], Unique] = Field(
        default_factory=list, description="arms (names, e.g. per_rollout-batch) that a replicate seed "
        "(stage ablation_replicate, sepo.seed k) trains again on every ablation domain, with no SFT row: the "
        "paired comparisons it must repeat, each arm against none-batch")

    @model_validator(mode="after")
    def _replicate_arms_exist(self) -> AblationParams:
        names = [run.name for run in self.runs]
        for i, arm in enumerate(self.replicate_arms):
            if arm not in names:
                raise ValueError(f"replicate_arms.{i}: {unknown_name('arm', arm, names)}")
        return self

    def replicate_runs(self) -> list[AblationRun]:
        """The arms of ``replicate_arms``, in ``runs`` order."""
        return [run for run in self.runs if run.name in self.replicate_arms]

    def eval_episodes_for(self, game: str) -> int:
        """Evaluation episodes per opponent of every arm in ``game``: ``game_eval_episodes``, else
        ``eval_episodes``."""
        return self.game_eval_episodes.get(game, self.eval_episodes)


class EvaluationTarget(_Strict):
    """One policy of the scheduled evaluation and the domains it is evaluated on."""

    policy: str = Field(description="'scripted:NAME' or 'model:PATH' (a folder of the project, or a Hub id)")
    games: Annotated[list[str], Unique] = Field(min_length=1, description="domains to evaluate the policy on")

    @model_validator(mode="after")
    def _names_exist(self) -> EvaluationTarget:
        kind, _, name = self.policy.partition(":")
        if kind not in ("scripted", "model") or not name:
            raise ValueError(f"bad policy {self.policy!r}; expected scripted:NAME or model:PATH")
        for game in self.games:
            if game not in GAME_NAMES:
                raise ValueError(str(unknown_name("game", game, GAME_NAMES)))
            if kind == "scripted" and name not in strategy_names(game):
                raise ValueError(str(unknown_name(f"{game} strategy", name, strategy_names(game))))
            if kind == "scripted" and adapts_to_agent(make_strategy(game, name)):
                raise ValueError(f"{name} responds to the agent's own policy: it cannot be the evaluated policy")
        return self


class OrchestrationParams(_Strict):
    """The Prefect flows of ``pipelines/``: stage retries, the Dask fan-out, the evaluation schedule."""

    stage_retries: int = Field(ge=0, description="retries of a failed DVC stage before the flow fails")
    stage_jobs: int = Field(gt=0, description="stages the pipeline flow runs side by side (1: one `dvc repro` "
                            "per stage; more: independent stages' commands at once, each then `dvc commit`-ed)")
    retry_backoff_seconds: float = Field(ge=0, description="delay before the first retry; doubles each retry")
    dask_address: str | None = Field(description="Dask scheduler address (tcp://host:8786) for the evaluation "
                                     "fan-out; null starts a local cluster; SEPO_DASK_ADDRESS overrides it")
    dask_workers: int = Field(gt=0, description="worker processes of the local Dask cluster")
    evaluation_cron: str = Field(description="cron schedule of the served scheduled_evaluation deployment")
    evaluation: list[EvaluationTarget] = Field(min_length=1, description="what scheduled_evaluation evaluates")

    @field_validator("dask_address")
    @classmethod
    def _address_is_a_url(cls, address: str | None) -> str | None:
        if address is None:
            return None
        parts = urlsplit(address)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in DASK_PROTOCOLS or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"expected a scheduler URL protocol://host:port with protocol one of "
                             f"{', '.join(DASK_PROTOCOLS)} (e.g. tcp://host:8786), or null; got {address!r}")
        return address

    @field_validator("evaluation_cron")
    @classmethod
    def _cron_parses(cls, expression: str) -> str:
        from datetime import datetime

        from cronsim import CronSim, CronSimError

        try:
            CronSim(expression, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"not a cron expression ({exc}); expected five fields 'minute hour day month "
                             f"weekday', e.g. '0 3 * * *'; got {expression!r}") from None
        return expression


class Params(_Strict):
    """The whole ``params.yaml``."""

    profile: str
    games: dict[str, GameParams]
    eval: EvalParams
    data: DataParams
    # ``validate`` would shadow BaseModel.validate, hence the alias
    validation: ValidateParams = Field(alias="validate")
    model: ModelParams
    sft: SFTParams
    generation: GenerationParams
    sft_validity: SFTValidityParams
    sepo: SepoParams
    penalty: PenaltyParams
    grpo: GRPOParams
    ablation: AblationParams
    orchestration: OrchestrationParams

    @field_validator("profile")
    @classmethod
    def _profile_is_known(cls, name: str) -> str:
        if name not in known_profiles():
            raise ConfigError(f"profile: {unknown_name('profile', name, known_profiles())}")
        return name

    @model_validator(mode="after")
    def _names_exist(self) -> Params:
        for game, spec in self.games.items():
            if game not in GAME_NAMES:
                raise ConfigError(f"games.{game}: {unknown_name('game', game, GAME_NAMES)}")
            known = strategy_names(game)
            for pool in POOLS:
                for i, name in enumerate(spec.pools.of(pool)):
                    if name not in known:
                        raise ConfigError(f"games.{game}.pools.{pool}.{i}: "
                                          f"{unknown_name(f'{game} strategy', name, known)}")
            for section, names in (("demonstrators", spec.demonstrators), ("strategies", spec.strategies)):
                for name in names:
                    if name not in known:
                        raise ConfigError(f"games.{game}.{section}.{name}: "
                                          f"{unknown_name(f'{game} strategy', name, known)}")
            for name in spec.demonstrators:
                _require_fixed(f"games.{game}.demonstrators.{name}", game, name)
        for game, roles in self.eval.references.items():
            if game not in GAME_NAMES:
                raise ConfigError(f"eval.references.{game}: {unknown_name('game', game, GAME_NAMES)}")
            for role, name in roles.items():
                if name not in strategy_names(game):
                    raise ConfigError(f"eval.references.{game}.{role}: "
                                      f"{unknown_name(f'{game} strategy', name, strategy_names(game))}")
                _require_fixed(f"eval.references.{game}.{role}", game, name)
        missing = [g for g in GAME_NAMES if g not in self.games]
        if missing:
            raise ConfigError(f"games: missing domain(s) {', '.join(missing)}; "
                              f"every one of {', '.join(GAME_NAMES)} needs its section")
        rows = (*MODEL_ROWS, *sorted({role for roles in self.eval.references.values() for role in roles}))
        for game in self.eval.game_episodes:
            if game not in GAME_NAMES:
                raise ConfigError(f"eval.game_episodes.{game}: {unknown_name('game', game, GAME_NAMES)}")
        for game in self.ablation.game_eval_episodes:  # any domain: narrowing ablation.games keeps it valid
            if game not in GAME_NAMES:
                raise ConfigError(f"ablation.game_eval_episodes.{game}: {unknown_name('game', game, GAME_NAMES)}")
        for row in self.eval.row_episodes:
            if row not in rows:
                raise ConfigError(f"eval.row_episodes.{row}: {unknown_name('report row', row, rows)}")
        return self

    @model_validator(mode="after")
    def _games_build(self) -> Params:
        """Each domain's settings and knobs are typed, and the engine and strategies build from them."""
        for game, spec in self.games.items():
            check_game_section(game, spec.settings, spec.strategies)
            self._builds(f"games.{game}.settings", self.game, game)
            for name in spec.strategies:
                self._builds(f"games.{game}.strategies.{name}", self.strategy, game, name)
        return self

    @staticmethod
    def _builds(key: str, build, *args: str) -> None:
        """The engines' and strategies' own checks (e.g. an item pool no valuation fits), as one line."""
        try:
            build(*args)
        except (ConfigError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise ConfigError(f"{key}: {exc}") from None

    @model_validator(mode="after")
    def _datasets_are_valid(self) -> Params:
        for dataset, spec in self.data.datasets.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", dataset):
                raise ConfigError(f"data.datasets.{dataset}: a dataset name is a folder and a Hub config "
                                  "name: lowercase letters, digits and '_', starting with a letter")
            for i, game in enumerate(spec.games):
                if game not in GAME_NAMES:
                    raise ConfigError(f"data.datasets.{dataset}.games.{i}: {unknown_name('game', game, GAME_NAMES)}")
            if len(set(spec.games)) != len(spec.games):
                raise ConfigError(f"data.datasets.{dataset}.games: a domain is listed twice")
        return self

    @model_validator(mode="after")
    def _sft_datasets_exist(self) -> Params:
        for i, dataset in enumerate(self.sft.datasets):
            if dataset not in self.data.datasets:
                raise ConfigError(f"sft.datasets.{i}: {unknown_name('dataset', dataset, self.data.datasets)}")
        games = {g for d in self.sft.datasets for g in self.data.datasets[d].games}
        counts = self.sft.examples_per_domain
        if set(counts) != games or any(n <= 0 for n in counts.values()):
            raise ConfigError(f"sft.examples_per_domain: expected a positive count for each of "
                              f"{', '.join(sorted(games))} (the domains of sft.datasets), got {dict(counts)}")
        return self

    @model_validator(mode="after")
    def _training_games_exist(self) -> Params:
        for game in self.grpo.game_overrides:
            if game not in GAME_NAMES:
                raise ConfigError(f"grpo.game_overrides.{game}: {unknown_name('game', game, GAME_NAMES)}")
        for i, game in enumerate(self.ablation.games):
            if game not in GAME_NAMES:
                raise ConfigError(f"ablation.games.{i}: {unknown_name('game', game, GAME_NAMES)}")
        for i, run in enumerate(self.ablation.runs):
            for j, name in enumerate(run.add_exploit):
                key = f"ablation.runs.{i}.add_exploit.{j}"
                games = [g for g in self.ablation.games if name in strategy_names(g)]
                if not games:
                    raise ConfigError(f"{key}: {name} is a strategy of none of the ablation domains "
                                      f"({', '.join(self.ablation.games)})")
                for game in games:
                    if name in self.games[game].pools.exploit:
                        raise ConfigError(f"{key}: {name} is already in games.{game}.pools.exploit")
        return self

    # -- builders ---------------------------------------------------------------
    def game(self, name: str) -> Game:
        """The domain ``name`` built with its params."""
        spec = self._spec(name)
        return make_game(name, rounds=spec.rounds, max_payoff=spec.max_payoff, **spec.settings)

    def strategy(self, game: str, name: str) -> Strategy:
        """A scripted strategy of ``game`` with its params overrides."""
        return make_strategy(game, name, **self._spec(game).strategies.get(name, {}))

    def pool(self, game: str, pool: str) -> list[Strategy]:
        if pool not in POOLS:
            raise unknown_name("pool", pool, POOLS)
        return [self.strategy(game, n) for n in self._spec(game).pools.of(pool)]

    def _spec(self, name: str) -> GameParams:
        if name not in self.games:
            raise unknown_name("game", name, self.games)
        return self.games[name]


def _require_fixed(key: str, game: str, name: str) -> None:
    """A strategy that adapts to the agent (BestResponse) can only be an opponent: as an agent or a
    demonstrator there is no agent's policy to respond to."""
    if adapts_to_agent(make_strategy(game, name)):
        raise ConfigError(f"{key}: {name} responds to the agent's own policy, so it can only be listed in an "
                          "opponent pool (games.<domain>.pools), not as a demonstrator or an evaluated policy")


def _one_line(error: ValidationError) -> str:
    return first_error_line(error, Params)


def with_sepo_seed(params: Params, seed: int) -> Params:
    """``params`` with ``sepo.seed`` replaced (a replicate run: ``sepo_replicate``, ``ablation_replicate``),
    validated like the file, so a seed out of range is one line."""
    raw = params.model_dump(by_alias=True)
    raw["sepo"]["seed"] = seed
    return parse_params(raw)


def parse_params(raw: Mapping[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; any problem is one ``ConfigError`` line naming the key."""
    try:
        return Params.model_validate(raw)
    except ConfigError as exc:  # raised by our own validators, already one line
        raise ConfigError(f"{source}: {exc}") from None
    except ValidationError as exc:
        cause = exc.errors()[0].get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):
            raise ConfigError(f"{source}: {cause}") from None
        raise ConfigError(f"{source}: {_one_line(exc)}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags), but a key given twice is an error, not a silent override."""


def _mapping_without_repeats(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping (line {mark.line + 1})", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeats)


def read_yaml_mapping(path: str | Path, what: str = "a mapping at the top level") -> dict[str, Any]:
    """A YAML file that must hold a mapping; anything else (missing, malformed, a ``!!python`` tag) is one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader: no tags
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML ({problem}{where})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected {what}")
    return dict(raw)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    return parse_params(read_yaml_mapping(path), str(path))
