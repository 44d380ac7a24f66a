"""inform's entry point: compose the config, validate it, seed, build the chosen stage.

    python run.py                                   # the simulated pipeline at tiny scale (stage=pipeline)
    python run.py stage=rm objective=ib beta=0.01 latent_dim=64
    python run.py -m stage=rm objective=ib beta=0.1,0.01 latent_dim=64,128
    python run.py stage=ppo explain=true            # what would be built or reused, trains nothing

Every stage, with the stages it needs, is declared once in inform/pipeline/graph.py.
"""
import hydra
import lightning as L
from omegaconf import DictConfig

from inform.config import validate
from inform.pipeline.graph import run_stage
from inform.runtime import ranks
from inform.runtime.preempt import PREEMPTION


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    PREEMPTION.install()  # Slurm's USR1/USR2: finish the step, checkpoint, requeue (not die)
    cfg = validate(cfg)  # keys, types and ranges, before any model is built
    ranks.start()  # under torchrun: join the other processes of this run
    L.seed_everything(cfg.seed, workers=True)
    return run_stage(cfg)


if __name__ == "__main__":
    main()
