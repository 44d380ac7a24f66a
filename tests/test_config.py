"""The real config tree composes, and bad values stop before any model is built, naming the key."""
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inform.config import ConfigError, validate
from tests.conftest import ROOT, run_inform

MODELS = ["tiny", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1.4b", "pythia-2.8b", "pythia-6.9b", "vicuna-7b"]


def test_default_config_validates(compose):
    cfg = validate(compose())
    assert (cfg.beta, cfg.latent_dim, cfg.kl_coef, cfg.seed) == (0.1, 128, 0.05, 0)
    assert cfg.policy.name == "tiny" and cfg.objective.name == "bt" and cfg.stage.name == "sft"


@pytest.mark.parametrize("model", MODELS)
def test_every_model_size_composes_for_every_role(compose, model):
    cfg = validate(compose(f"model@policy={model}", f"model@reward={model}"))
    assert cfg.policy.name == cfg.reward.name == model
    assert (cfg.policy.source is None) == (model == "tiny")


def test_ib_objective_takes_beta_and_latent_dim_from_the_top(compose):
    cfg = validate(compose("objective=ib", "beta=0.01", "latent_dim=64"))
    assert cfg.objective.loss.beta == 0.01 and cfg.objective.head.latent_dim == 64
    loss_fn = instantiate(cfg.objective.loss)
    assert loss_fn.keywords == {"beta": 0.01}


@pytest.mark.parametrize("group,options", [
    ("objective", ["bt", "ib", "bsr"]),
    ("data", ["synthetic", "alpaca_farm", "hh_rlhf", "tldr"]),
    ("trainer", ["cpu", "gpu", "ddp", "deepspeed_zero2", "deepspeed_zero3"]),
    ("logger", ["wandb", "csv", "none"]),
    ("stage", ["sft", "rm"]),
])
def test_every_group_option_composes(compose, group, options):
    for option in options:
        cfg = validate(compose(f"{group}={option}"))
        assert cfg[group] is not None


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
    ("objective.head.kind=mlp", "objective.head.kind"), ("model@policy=pythia-70m", "rm.init"),
])
def test_impossible_values_name_the_key(compose, override, key):
    extra = ["rm.init=sft"] if key == "rm.init" else []
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: "):
        validate(compose(override, *extra))


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


def test_run_py_rejects_a_bad_key_before_building_anything(tmp_path):
    """The real entry point: the error names the key, and no stage started (no artifact)."""
    proc = run_inform("stage=rm", "latent_dim=0", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode != 0
    assert "latent_dim: must be > 0 (got 0)" in proc.stderr
    assert not (tmp_path / "artifacts").exists()
    proc = run_inform("stage=rm", "+rm.epochz=3", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode != 0 and "rm.epochz" in proc.stderr
