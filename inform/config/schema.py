"""The structured schema of the config: one dataclass per section (types and defaults).

An unknown key or a value of the wrong type fails when the composed config is merged into
`Schema` (see `inform.config.validate`). The values of record are in conf/config.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from inform.rl.ppo_config import PPOConfig


@dataclass
class ModelSchema:
    name: str = MISSING
    arch: str = "gpt_neox"
    source: Optional[str] = None
    revision: Optional[str] = None
    init: str = "pretrained"
    hidden_size: int = MISSING
    num_layers: int = MISSING
    num_heads: int = MISSING
    num_kv_heads: Optional[int] = None
    intermediate_size: int = MISSING
    vocab_size: Optional[int] = None
    tokenizer_vocab_size: Optional[int] = None
    max_position_embeddings: int = 2048
    rotary_pct: float = 1.0
    tie_word_embeddings: bool = False
    params: Optional[int] = None
    dtype: str = "float32"
    max_length: int = 2048
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False


@dataclass
class HeadSchema:
    kind: str = "scalar"
    latent_dim: int = 128
    decoder: str = "linear"


@dataclass
class ObjectiveSchema:
    name: str = MISSING
    loss: Any = MISSING  # a `_target_` node: an inform.objectives function, `_partial_: true`
    head: HeadSchema = field(default_factory=HeadSchema)


@dataclass
class DataSchema:
    name: str = MISSING
    max_prompt_tokens: int = 512
    max_response_tokens: int = 512
    on_long_prompt: str = "truncate"  # truncate: keep a prompt's last tokens | error: stop, naming the row
    sft: Any = None  # `_target_` nodes returning a datasets.Dataset
    preference: Any = None
    prompts: Any = None
    label_prompts: Any = None  # optional: instructions for the label stage (else the first of `prompts`)
    eval_prompts: Any = None
    true_reward: Any = None  # `_target_` (partial) of f(prompt, response) -> exact quality


@dataclass
class StageSchema:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class PathsSchema:
    artifacts: str = "artifacts"
    output_dir: Optional[str] = None


@dataclass
class TrainSchema:
    """What every trained stage has (the values come from conf/config.yaml)."""

    max_steps: int = -1
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    val_size: int = 512


@dataclass
class SFTSchema(TrainSchema):
    epochs: int = -1
    val_every: int = 200


@dataclass
class RMSchema(TrainSchema):
    data: str = "labels"
    init: str = "sft"
    epochs: int = 1


@dataclass
class EnsembleSchema:
    members: int = 1
    combine: str = "mean"
    uwo_lambda: float = 0.1


@dataclass
class GoldSchema(TrainSchema):
    init: str = "sft"
    epochs: int = 2


@dataclass
class LabelSchema:
    n_prompts: int = 1000
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    batch_size: int = 512


@dataclass
class PPOSchema(PPOConfig):
    steps: int = 100
    batch_size: int = 64
    missing_eos_penalty: float = 0.0
    critic_init: str = "sft"


@dataclass
class RLOOSchema:
    k: int = 4


@dataclass
class EvalSchema:
    n_prompts: int = 256
    batch_size: int = 256
    temperature: float = 0.8
    top_p: float = 0.9
    missing_eos_penalty: float = 0.5


@dataclass
class BoNSchema:
    n_samples: int = 16
    ns: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])


@dataclass
class CSISchema:
    every_n_evals: int = 1
    method: str = "dbscan"
    eps: Optional[float] = None
    eps_scale: float = 1.0
    min_samples: int = 5
    min_cluster_size: int = 5
    plot_every_n_evals: int = 5
    plot_method: str = "tsne"


@dataclass
class MahalanobisSchema:
    alpha: float = 0.01
    eps: float = 1e-6
    shrinkage: str = "none"
    pca_dim: Optional[int] = None


@dataclass
class DetectorsSchema:
    csi: CSISchema = field(default_factory=CSISchema)
    mahalanobis: MahalanobisSchema = field(default_factory=MahalanobisSchema)


@dataclass
class EarlyStopSchema:
    enabled: bool = False
    watch: str = "csi/value"
    e_max: float = 10.0


DETECTORS = {  # name -> the metrics it logs at every eval step
    "csi": ("csi/value", "csi/n_clusters", "csi/noise_frac"),
    "mahalanobis": ("detect/mahalanobis_mean", "detect/mop"),
    "energy": ("detect/energy_gap",),
}


@dataclass
class Schema:
    policy: ModelSchema = MISSING
    reward: ModelSchema = MISSING
    gold_model: ModelSchema = MISSING
    objective: ObjectiveSchema = MISSING
    data: DataSchema = MISSING
    stage: StageSchema = MISSING
    trainer: Any = MISSING  # a `_target_: lightning.Trainer` node
    logger: Any = field(default_factory=dict)  # name -> `_target_` logger node
    beta: float = 0.1
    latent_dim: int = 128
    kl_coef: float = 0.05
    label_noise: float = 0.25
    seed: int = 0
    name: str = "default"
    group: Optional[str] = None
    on_nonfinite: str = "stop"
    paths: PathsSchema = field(default_factory=PathsSchema)
    sft: SFTSchema = field(default_factory=SFTSchema)
    rm: RMSchema = field(default_factory=RMSchema)
    ensemble: EnsembleSchema = field(default_factory=EnsembleSchema)
    gold: GoldSchema = field(default_factory=GoldSchema)
    label: LabelSchema = field(default_factory=LabelSchema)
    ppo: PPOSchema = field(default_factory=PPOSchema)
    rloo: RLOOSchema = field(default_factory=RLOOSchema)
    eval: EvalSchema = field(default_factory=EvalSchema)
    bon: BoNSchema = field(default_factory=BoNSchema)
    detect: List[str] = field(default_factory=lambda: ["csi", "mahalanobis", "energy"])
    detectors: DetectorsSchema = field(default_factory=DetectorsSchema)
    early_stop: EarlyStopSchema = field(default_factory=EarlyStopSchema)
    ibl_coef: float = 0.0
    energy_coef: float = 0.0
