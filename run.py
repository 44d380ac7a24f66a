"""inform's entry point: compose the config, validate it, seed, run the chosen stage.

    python run.py                                   # the default stage at tiny scale
    python run.py stage=rm objective=ib beta=0.01 latent_dim=64
    python run.py -m stage=rm objective=ib beta=0.1,0.01 latent_dim=64,128
"""
import hydra
import lightning as L
from hydra.utils import get_method
from omegaconf import DictConfig

from inform.config import validate
from inform.pipeline import ranks
from inform.pipeline.preempt import PREEMPTION


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    PREEMPTION.install()  # Slurm's USR1/USR2: finish the step, checkpoint, requeue (not die)
    cfg = validate(cfg)  # keys, types and ranges, before any model is built
    ranks.start()  # under torchrun: join the other processes of this run
    L.seed_everything(cfg.seed, workers=True)
    stage = get_method(cfg.stage._target_)
    return stage(cfg)


if __name__ == "__main__":
    main()
