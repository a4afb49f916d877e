"""Training configuration: a YAML file, every key also settable on the command line as `--key=value`
(nested keys with dots: `--reasoner.url=http://...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ReasonerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="OpenAI-compatible base URL (frozen reasoner, planner-only mode)")
    model: str | None = None
    mode: Literal["continue", "completions", "turns"] = "continue"
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    local_model: str | None = Field(None, description="HF folder/id of a local reasoner (joint mode)")


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(None, description="JSONL/Parquet file; none = the synthetic task")
    synthetic_seed: int = 0
    synthetic_steps: tuple[int, int] = (2, 4)
    synthetic_size: int = Field(2000, ge=1)
    synthetic_scale: int = Field(1, ge=1, description="multiplies the ranges of the synthetic task's numbers")
    traces: Path | None = Field(None, description="train from the labelled traces of this trace store "
                                                  "(continual learning; no reasoner needed)")
    values: Path | None = Field(None, description="train offline on the step values of this dataset "
                                                  "(`rsim train collect`'s JSONL; no reasoner needed)")


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class PlannerRewardWeights(BaseModel):
    """Weights of R_P's terms: R_acc, R_penalty (−share of the most used strategy), R_terminal."""
    model_config = ConfigDict(extra="forbid")

    acc: float = Field(1.0, ge=0)
    penalty: float = Field(1.0, ge=0, description="0 on instruction-tuned reasoners whose best episodes apply "
                                                  "one strategy (or none) throughout")
    terminal: float = Field(1.0, ge=0)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path = Path("runs/planner")
    planner_model: str = Field("", description="HF folder or hub id of the planner base model (~ expanded); "
                                               "not used by mode grpo")
    # planner: GRPO on the planner, the reasoner frozen behind its endpoint (the paper's plug-in recipe);
    # joint: planner and a local reasoner together (λ schedule); grpo: the local reasoner alone, no planner and
    # nothing injected (the paper's "w/ GRPO" baseline; the episode is `grpo_episode`)
    mode: Literal["planner", "joint", "grpo"] = "planner"
    grpo_episode: Literal["plain", "zerocot", "ps+"] = Field(
        "plain", description="mode grpo: the prompt baseline its rollouts run (and `rsim eval --methods` serves): "
                             "plain = the question alone, the reasoner's own reasoning, its own \\boxed{} answer")
    reasoner: ReasonerConfig = ReasonerConfig()
    data: DataConfig = DataConfig()
    lora: LoraConfig = LoraConfig()
    catalog_path: Path | None = None

    max_steps: int = Field(100, ge=1, description="optimizer steps")
    batch_size: int = Field(2, ge=1, description="questions per step")
    group_size: int = Field(4, ge=2, description="rollouts per question (G)")
    ppo_epochs: int = Field(1, ge=1)
    micro_batch: int = Field(8, ge=1, description="decisions per forward/backward pass")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    clip_eps: float = Field(0.2, gt=0, lt=1)
    kl_coef: float = Field(0.0, ge=0, description="KL to the initial policy (0 = off)")
    temperature: float = Field(1.0, gt=0, description="planner sampling temperature in rollouts")
    context_tokens: int = Field(512, ge=32)
    planner_reward_weights: PlannerRewardWeights = PlannerRewardWeights()
    planner_weighting: Literal["decision", "tokens"] = Field(
        "decision", description="decision: every planner decision one term of the loss (default: a decision is "
        "the planner's action, and one long step must not drown the short ones); tokens: each decision weighted "
        "by the reasoner tokens it governs, as the paper's token-averaged objective over the interleaved sequence")
    # offline training on step values (data.values; planner_server.training.values)
    value_temperature: float = Field(0.25, gt=0, description="τ of the target p*(a) ∝ exp(Ã(a)/τ); the served "
                                                             "gain is τ·(log p(a) − log p(quiet))")
    speak_cost: float = Field(0.1, ge=0, description="what injecting costs in score units: Ã(a) = A(a) − cost, so "
                                                     "ties with quiet lean to quiet")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="questions held out to choose the gate margin")
    joint_lambda_stage1: float = Field(0.7, ge=0, le=1)
    joint_lambda_stage2: float = Field(0.3, ge=0, le=1)
    joint_switch_step: int = Field(50, ge=0)

    episode_max_steps: int = Field(4, ge=1)
    max_tokens_per_step: int = Field(48, ge=1)
    final_max_tokens: int = Field(24, ge=1)
    step_delimiter: str = "\n\n"
    min_step_tokens: int = Field(24, ge=0, description="a reasoning step's vLLM min_tokens (as served)")
    first_step: Literal["planner", "reasoner"] = Field(
        "planner", description="who writes the first step: the planner's pick, or the reasoner alone from the "
                               "plain question (nothing injected; not a decision, so not trained)")
    unguided_tail: bool = Field(False, description="after the last planned step the reasoner finishes its reasoning "
                                                   "unguided in the reasoning budget left (as served)")
    continue_cut: bool = Field(False, description="a step cut by its budget mid-paragraph is continued unguided "
                                                  "(as served)")
    concurrency: int = Field(8, ge=1, description="rollouts in flight at once (joint and grpo modes: also the most "
                                                  "steps the local reasoner generates in one batch)")

    save_every: int = Field(10, ge=1)
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        ["tensorboard"], description="sinks besides metrics.jsonl: TensorBoard event files in RUN_DIR/tensorboard "
        "(skipped with a warning when tensorboard is missing), Weights & Biases (WANDB_PROJECT, default rsim)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"
    threads: int | None = None

    @model_validator(mode="after")
    def _reasoner_given(self) -> TrainConfig:
        if self.planner_model.startswith("~"):
            self.planner_model = str(Path(self.planner_model).expanduser())
        if self.data.traces is not None and self.data.values is not None:
            raise ValueError("data.traces and data.values are two offline modes: give one")
        if self.mode == "planner" and not self.reasoner.url and self.data.traces is None and self.data.values is None:
            raise ValueError("planner-only mode needs reasoner.url (an OpenAI-compatible endpoint)")
        if self.mode in ("joint", "grpo") and not self.reasoner.local_model:
            raise ValueError(f"{self.mode} mode needs reasoner.local_model (a local HF reasoner to train)")
        if self.mode != "grpo" and not self.planner_model:
            raise ValueError(f"{self.mode} mode needs planner_model (HF folder or hub id of the planner)")
        if self.mode == "joint" and (self.kl_coef > 0 or self.ppo_epochs > 1):
            raise ValueError("joint mode makes one clipped-surrogate pass per batch without a KL term: set kl_coef "
                             "to 0 and ppo_epochs to 1 (planner and grpo modes support both)")
        if self.mode == "grpo" and self.kl_coef > 0 and not self.lora.enabled:
            raise ValueError("mode grpo measures the KL against the base model under the LoRA adapter; with full "
                             "fine-tuning set kl_coef to 0 (no frozen reference copy of the reasoner is kept)")
        if self.reasoner.local_model and self.reasoner.local_model.startswith("~"):
            self.reasoner.local_model = str(Path(self.reasoner.local_model).expanduser())
        return self


def parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`--a.b=v` sets data["a"]["b"] = yaml(v)."""
    for item in overrides:
        if not item.startswith("--") or "=" not in item:
            raise ValueError(f"override {item!r} must look like --key=value")
        key, value = item[2:].split("=", 1)
        node = data
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parse_value(value)
    return data


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training config not found: {p}")
        data = yaml.safe_load(p.read_text()) or {}
    return TrainConfig.model_validate(apply_overrides(data, list(overrides)))
