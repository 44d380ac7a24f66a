"""The structured schema of the config: one dataclass per section, types only.

Every value lives in the YAML under conf/ (conf/config.yaml and its groups), once: a field
here has no default, which OmegaConf reads as MISSING, so a key that no YAML sets fails in
`inform.config.validate`, naming it. An unknown key or a value of the wrong type fails when
the composed config is merged into `Schema`; the ranges are checked in checks.py.
(tests/test_config_defaults.py keeps it so.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from inform.rl.ppo_config import PPOConfig


@dataclass
class ModelSchema:
    name: str
    arch: str
    source: Optional[str]
    revision: Optional[str]
    init: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: Optional[int]
    intermediate_size: int
    vocab_size: Optional[int]
    tokenizer_vocab_size: Optional[int]
    max_position_embeddings: int
    rotary_pct: float
    tie_word_embeddings: bool
    params: Optional[int]
    dtype: str
    max_length: int
    trust_remote_code: bool
    gradient_checkpointing: bool


@dataclass
class HeadSchema:
    kind: str
    latent_dim: int
    decoder: str


@dataclass
class ObjectiveSchema:
    name: str
    loss: Any  # a `_target_` node: an inform.objectives function, `_partial_: true`
    head: HeadSchema


@dataclass
class DataSchema:
    name: str
    max_prompt_tokens: int
    max_response_tokens: int
    on_long_prompt: str  # truncate: keep a prompt's last tokens | error: stop, naming the row
    seed: Optional[int]  # synthetic data: re-draws the data sets | null: fixed files
    sft: Any  # `_target_` nodes returning a datasets.Dataset (or null)
    preference: Any
    prompts: Any
    label_prompts: Any  # null: the label stage takes the first of `prompts`
    eval_prompts: Any
    true_reward: Any  # `_target_` (partial) of f(prompt, response) -> exact quality, or null


@dataclass
class StageSchema:
    name: str  # the stage to build; `stage=X` dispatches through inform/pipeline/graph.py's table


@dataclass
class PathsSchema:
    artifacts: str
    output_dir: Optional[str]


@dataclass
class TrainSchema:
    """What every trained stage has."""

    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    val_size: int


@dataclass
class SFTSchema(TrainSchema):
    epochs: int
    val_every: int


@dataclass
class RMSchema(TrainSchema):
    data: str
    init: str
    epochs: int


@dataclass
class EnsembleSchema:
    members: int
    combine: str
    uwo_lambda: float


@dataclass
class GoldSchema(TrainSchema):
    init: str
    epochs: int


@dataclass
class LabelSchema:
    n_prompts: int
    temperature: float
    top_p: float
    max_new_tokens: int
    batch_size: int


@dataclass
class PPOSchema(PPOConfig):
    steps: int
    batch_size: int
    missing_eos_penalty: float
    critic_init: str


@dataclass
class RLOOSchema:
    k: int


@dataclass
class EvalSchema:
    n_prompts: int
    batch_size: int
    temperature: float
    top_p: float
    missing_eos_penalty: float


@dataclass
class BoNSchema:
    n_samples: int
    ns: List[int]


@dataclass
class CSISchema:
    every_n_evals: int
    method: str
    eps: Optional[float]
    eps_scale: float
    min_samples: int
    min_cluster_size: int
    plot_every_n_evals: int
    plot_method: str


@dataclass
class MahalanobisSchema:
    alpha: float
    eps: float
    shrinkage: str
    pca_dim: Optional[int]


@dataclass
class DetectorsSchema:
    csi: CSISchema
    mahalanobis: MahalanobisSchema


@dataclass
class EarlyStopSchema:
    enabled: bool
    watch: str
    e_max: float


DETECTORS = {  # name -> the metrics it logs at every eval step
    "csi": ("csi/value", "csi/n_clusters", "csi/noise_frac"),
    "mahalanobis": ("detect/mahalanobis_mean", "detect/mop"),
    "energy": ("detect/energy_gap",),
}


@dataclass
class Schema:
    policy: ModelSchema
    reward: ModelSchema
    gold_model: ModelSchema
    objective: ObjectiveSchema
    data: DataSchema
    stage: StageSchema
    trainer: Any  # a `_target_: lightning.Trainer` node
    logger: Any  # name -> `_target_` logger node
    beta: float
    latent_dim: int
    kl_coef: float
    label_noise: float
    seed: int
    name: str
    group: Optional[str]
    on_nonfinite: str
    explain: bool
    audit: bool
    paths: PathsSchema
    sft: SFTSchema
    rm: RMSchema
    ensemble: EnsembleSchema
    gold: GoldSchema
    label: LabelSchema
    ppo: PPOSchema
    rloo: RLOOSchema
    eval: EvalSchema
    bon: BoNSchema
    detect: List[str]
    detectors: DetectorsSchema
    early_stop: EarlyStopSchema
    ibl_coef: float
    energy_coef: float
