"""The real config tree composes, and bad values stop before any model is built, naming the key."""
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inform.config import ConfigError, validate
from tests.conftest import ROOT, run_inform

MODELS = ["tiny", "tiny-small", "tiny-large", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1.4b", "pythia-2.8b", "pythia-6.9b", "vicuna-7b"]


def test_default_config_validates(compose):
    cfg = validate(compose())
    assert (cfg.beta, cfg.latent_dim, cfg.kl_coef, cfg.label_noise, cfg.seed) == (0.1, 128, 0.05, 0.25, 0)
    assert cfg.policy.name == cfg.reward.name == cfg.gold_model.name == "tiny"
    assert cfg.objective.name == "ib" and cfg.stage.name == "pipeline"
    assert cfg.ppo.kl_coef == 0.05 and (cfg.ppo.temperature, cfg.ppo.top_p) == (0.8, 0.9)
    assert cfg.explain is False and validate(compose("explain=true")).explain is True


def test_ppo_config_is_the_ppo_sections_algorithm_part_with_no_defaults_of_its_own(compose):
    from dataclasses import fields

    from inform.rl.ppo_config import PPOConfig

    cfg = validate(compose("experiment=smoke"))
    ppo = PPOConfig.from_section(cfg.ppo)
    assert {f.name: getattr(ppo, f.name) for f in fields(PPOConfig)} == {f.name: cfg.ppo[f.name] for f in fields(PPOConfig)}
    assert (ppo.max_new_tokens, ppo.kl_coef) == (cfg.data.max_response_tokens, cfg.kl_coef)
    assert PPOConfig.from_section(cfg.ppo, epochs=1).epochs == 1
    with pytest.raises(TypeError, match="PPOConfig has no steps"):
        PPOConfig.from_section(cfg.ppo, steps=3)  # a stage key, not the algorithm's
    with pytest.raises(TypeError):
        PPOConfig()  # no defaults: the values are conf/config.yaml's


@pytest.mark.parametrize("model", MODELS)
def test_every_model_size_composes_for_every_role(compose, model):
    cfg = validate(compose(f"model@policy={model}", f"model@reward={model}", f"model@gold_model={model}"))
    assert cfg.policy.name == cfg.reward.name == cfg.gold_model.name == model
    assert (cfg.policy.source is None) == model.startswith("tiny")


def test_ib_objective_takes_beta_and_latent_dim_from_the_top(compose):
    cfg = validate(compose("objective=ib", "beta=0.01", "latent_dim=64"))
    assert cfg.objective.loss.beta == 0.01 and cfg.objective.head.latent_dim == 64
    loss_fn = instantiate(cfg.objective.loss)
    assert loss_fn.keywords == {"beta": 0.01}


@pytest.mark.parametrize("group,options", [
    ("objective", ["bt", "ib", "bsr", "bt_margin", "hinge"]),
    ("data", ["synthetic", "alpaca_farm", "hh_rlhf", "tldr"]),
    ("trainer", ["cpu", "gpu", "ddp", "deepspeed_zero2", "deepspeed_zero3"]),
    ("logger", ["wandb", "csv", "none"]),
    ("stage", ["pipeline", "sft", "gold", "label", "rm", "ppo", "rloo", "bon"]),
    ("experiment", ["smoke", "inform_simulated"]),
])
def test_every_group_option_composes(compose, group, options):
    for option in options:
        cfg = validate(compose(f"{group}={option}"))
        if group == "experiment":  # a `# @package _global_` delta: it names the run
            assert cfg.name == option
        else:
            assert cfg[group] is not None


METHODS = {  # conf/method/: objective, beta, kl_coef, ensemble members and combine rule
    "bt": ("bt", 0.1, 0.05, 1, "mean"), "bt_kl": ("bt", 0.1, 0.2, 1, "mean"), "ib": ("ib", 0.1, 0.05, 1, "mean"),
    "ib_low_beta": ("ib", 0.001, 0.05, 1, "mean"), "bsr": ("bsr", 0.1, 0.05, 1, "mean"),
    "uwo": ("bt", 0.1, 0.05, 3, "uwo"), "warm": ("bt", 0.1, 0.05, 3, "warm"),
}


def test_each_method_is_the_delta_it_names_and_the_command_line_still_wins(compose):
    assert sorted(p.stem for p in (ROOT / "conf" / "method").glob("*.yaml")) == sorted(METHODS)
    for method, want in METHODS.items():
        cfg = validate(compose(f"method={method}"))
        assert (cfg.objective.name, cfg.beta, cfg.kl_coef, cfg.ensemble.members, cfg.ensemble.combine) == want, method
    assert validate(compose("method=ib_low_beta", "beta=0.01")).objective.loss.beta == 0.01  # IB's loss reads beta


def test_unknown_key_names_the_key(compose):
    with pytest.raises(ConfigError, match=r"^rm\.lerning_rate"):
        validate(compose("+rm.lerning_rate=0.1"))


def test_unknown_objective_argument_names_the_key(compose):
    with pytest.raises(ConfigError, match=r"^objective\.loss\.betta: not an argument of inform\.objectives\.ib_loss"):
        validate(compose("objective=ib", "+objective.loss.betta=0.1"))


def test_wrong_type_names_the_key(compose):
    with pytest.raises(ConfigError, match=r"^latent_dim: .*'many'"):
        validate(compose("latent_dim=many"))
    with pytest.raises(ConfigError, match=r"^sft\.batch_size"):
        validate(compose("sft.batch_size=1.5"))


@pytest.mark.parametrize("override,key", [
    ("latent_dim=0", "latent_dim"), ("latent_dim=-3", "latent_dim"), ("beta=-0.1", "beta"),
    ("kl_coef=-1", "kl_coef"), ("rm.lr=0", "rm.lr"), ("rm.data=gold", "rm.data"),
    ("objective.head.kind=mlp", "objective.head.kind"), ("rm.init=pretrained", "rm.init"),
    ("label_noise=1.5", "label_noise"), ("label_noise=-0.1", "label_noise"), ("ppo.top_p=0", "ppo.top_p"),
    ("ppo.top_p=1.2", "ppo.top_p"), ("eval.top_p=0", "eval.top_p"), ("ppo.temperature=0", "ppo.temperature"),
    ("ppo.kl_controller=pid", "ppo.kl_controller"), ("ppo.minibatches=100", "ppo.minibatches"),
    ("gold.init=hub", "gold.init"), ("ensemble.members=0", "ensemble.members"), ("ensemble.combine=median", "ensemble.combine"),
    ("ensemble.uwo_lambda=-1", "ensemble.uwo_lambda"), ("ppo.kv_cache=paged", "ppo.kv_cache"),
])
def test_impossible_values_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: "):
        validate(compose(override))


def test_trainer_configs_build_their_strategy_objects(compose):
    """Each trainer config's strategy object builds on the CPU (the GPU run is a `gpu` test)."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    for stage in (2, 3):
        cfg = validate(compose(f"trainer=deepspeed_zero{stage}"))
        strategy = instantiate(cfg.trainer.strategy)
        assert isinstance(strategy, DeepSpeedStrategy) and strategy.config["zero_optimization"]["stage"] == stage
    cfg = validate(compose("trainer=cpu"))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.precision == "32-true"


@pytest.mark.parametrize("name", ["cpu", "gpu", "ddp", "deepspeed_zero2", "deepspeed_zero3"])
def test_every_trainer_config_builds_a_trainer(compose, monkeypatch, name):
    """The whole Trainer, not just its strategy (moved to the CPU here): `num_nodes` and
    `devices` come from Slurm's variables, which are strings, and Lightning takes ints."""
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "1")
    over = ["trainer.accelerator=cpu"]
    if name.startswith("deepspeed"):
        over += ["trainer.precision=32-true", "trainer.strategy._target_=tests.helpers.cpu_deepspeed.CPUDeepSpeedStrategy"]
    cfg = validate(compose(f"trainer={name}", *over))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.num_nodes == 1 and trainer.num_devices == 1
    assert trainer.precision == ("32-true" if name in ("cpu", "deepspeed_zero2", "deepspeed_zero3") else "bf16-mixed")


def test_trained_models_load_in_float32_under_mixed_precision_and_frozen_ones_in_the_preset_dtype(compose):
    """bf16 presets: the trained copy is fp32 (autocast computes in bf16; AdamW would round
    small updates away in bf16 weights) unless DeepSpeed (its own fp32 master weights) or
    bf16-true says otherwise; frozen models (reference, proxy, gold) use the preset's bf16."""
    from inform.runtime.trainer import trainable_dtype

    preset = ["model@policy=pythia-1.4b", "model@reward=pythia-410m"]
    for trainer, want in [("gpu", "float32"), ("ddp", "float32"), ("cpu", "float32"),
                          ("deepspeed_zero2", "bfloat16"), ("deepspeed_zero3", "bfloat16")]:
        cfg = validate(compose(*preset, f"trainer={trainer}"))
        assert cfg.policy.dtype == "bfloat16"
        assert trainable_dtype(cfg, cfg.policy) == want and trainable_dtype(cfg, cfg.reward) == want, trainer
    cfg = validate(compose(*preset, "trainer=gpu", "trainer.precision=bf16-true"))
    assert trainable_dtype(cfg, cfg.policy) == "bfloat16"
    cfg = validate(compose("trainer=cpu"))  # the tiny presets are float32 anyway
    assert trainable_dtype(cfg, cfg.policy) == "float32" == cfg.policy.dtype


def test_run_py_rejects_a_bad_key_before_building_anything(tmp_path):
    """The real entry point: the error names the key, and no stage started (no artifact)."""
    proc = run_inform("stage=rm", "latent_dim=0", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode != 0
    assert "latent_dim: must be > 0 (got 0)" in proc.stderr
    assert not (tmp_path / "artifacts").exists()
    proc = run_inform("stage=rm", "+rm.epochz=3", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode != 0 and "rm.epochz" in proc.stderr


def test_paper_experiment_composes_from_the_command_line(tmp_path):
    """`python run.py experiment=inform_simulated --cfg job`: the paper's setup, no model built."""
    proc = run_inform("experiment=inform_simulated", "objective=ib", "--cfg", "job", cwd=tmp_path, timeout=120)
    job = OmegaConf.create(proc.stdout)
    assert (job.policy.source, job.reward.source, job.gold_model.source) == (
        "EleutherAI/pythia-1.4b", "EleutherAI/pythia-1.4b", "lmsys/vicuna-7b-v1.5")
    assert job.data.name == "alpaca_farm" and job.data.label_prompts.split == "preference"
    assert (job.sft.lr, job.rm.lr, job.rm.batch_size, job.ppo.policy_lr, job.ppo.critic_lr, job.ppo.batch_size) == (
        5e-5, 5e-6, 64, 5e-7, 1e-6, 16)
    assert (job.ppo.temperature, job.ppo.top_p, job.ppo.max_new_tokens, job.ppo.lam, job.ppo.clip) == (0.8, 0.9, 512, 0.95, 0.2)
    assert job.label_noise == 0.25 and job.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("overrides,key,message", [
    (["detect=[csi,no_such]"], "detect", "unknown detector 'no_such'"),
    (["objective=bt", "ibl_coef=0.05"], "ibl_coef", "IBL needs an IB proxy reward model"),
    (["detect=[csi]", "early_stop.watch=detect/mop"], "early_stop.watch", "not a metric of the active detectors"),
    (["detectors.mahalanobis.shrinkage=oas"], "detectors.mahalanobis.shrinkage", "is not none or ledoit_wolf"),
    (["energy_coef=-1"], "energy_coef", "must be >= 0"),
])
def test_bad_detector_settings_name_the_key(compose, overrides, key, message):
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: .*{message}"):
        validate(compose(*overrides))


@pytest.mark.parametrize("override", ["trainer.devices=2", "trainer.devices=-1", "trainer.devices=[0,1]", "trainer.num_nodes=2"])
def test_more_processes_than_the_run_has_are_refused_by_name_instead_of_hanging(compose, override):
    """Without torchrun a run is one process; a Trainer asking for more would start its own
    copies of the pipeline or wait for ranks that never come."""
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: .*this run has 1 .*torchrun"):
        validate(compose("trainer=ddp", override))


def test_a_one_process_trainer_under_torchrun_is_refused_by_name(compose, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"^trainer[.]devices: the Trainer asks for 1 processes and this run has 2"):
        validate(compose("trainer=cpu"))
    validate(compose("trainer=ddp", "trainer.devices=2"))  # as many as the run has
