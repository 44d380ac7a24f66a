"""The stage table (inform/pipeline/graph.py): no stale artifact can be reused.

- every config key a real build reads is covered by its stage's hash (recorded during real
  tiny builds of every stage, in this process, by `audit=true`; every other slow test runs
  with it too);
- changing a declared key changes the hash of its stage and of everything downstream, and of
  nothing else; runtime keys (paths, loggers, names) change no hash;
- the imports run one way: stages -> runtime -> nothing of theirs; no circle between files.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from inform.config import validate
from inform.pipeline import graph
from inform.pipeline.audit import undeclared
from inform.pipeline.graph import RUNTIME_KEYS, Stage, covered_keys, ensure, hash_of, is_covered, keys_of, plan
from tests.conftest import ROOT, run_inform

TINY = [  # the smoke pipeline, smaller still: every stage in seconds
    "experiment=smoke", "logger=csv", "sft.max_steps=20", "sft.val_every=10", "data.sft.n=1500", "data.preference.n=1500",
    "gold.max_steps=15", "rm.max_steps=10", "rm.val_size=64", "gold.val_size=64", "sft.val_size=64", "label.n_prompts=96",
    "data.prompts.n=200", "data.eval_prompts.n=32", "eval.n_prompts=32", "ppo.batch_size=8", "ppo.steps=2",
    "ppo.eval_every=2", "rloo.k=2", "bon.n_samples=4", "bon.ns=[1,2,4]", "detectors.csi.min_samples=3",
]
# A: other presets for the reward and gold models (their own SFT stages), a WARM ensemble, every detector
CONFIG_A = TINY + ["model@reward=tiny-small", "model@gold_model=tiny-small", "ensemble.members=2", "ensemble.combine=warm"]
# B: the branches A does not take: RMs from the base weights on the "human" pairs, a mean ensemble, CSI alone
CONFIG_B = TINY + ["rm.data=human", "rm.init=base", "gold.init=base", "ensemble.members=2", "ensemble.combine=mean",
                   "detect=[csi]", "early_stop.watch=csi/value"]
TARGETS = ("ppo", "rloo", "bon")
FEWER_STEPS = ["sft.max_steps=4", "gold.max_steps=3", "rm.max_steps=3", "ppo.steps=1", "ppo.eval_every=1",
               "data.sft.n=400", "data.preference.n=400"]  # only the reads matter here, not what is learned


def all_stages(cfg: DictConfig) -> list[str]:
    return list(dict.fromkeys(s for t in TARGETS for s in plan(t, cfg)))


def undeclared_reads(reads: dict[str, set[str]], cfg: DictConfig) -> dict[str, list[str]]:
    """Per stage, the keys its build read that neither its hash nor the runtime keys cover."""
    out = {name: undeclared(keys, covered_keys(name, cfg) | set(RUNTIME_KEYS), is_covered) for name, keys in reads.items()}
    return {name: keys for name, keys in out.items() if keys}


def composed(compose, overrides: list[str], tmp: Path) -> DictConfig:
    return validate(compose(*overrides, f"paths.artifacts={tmp}/artifacts", f"paths.output_dir={tmp}/out"))


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """Real tiny builds, in this process, of every stage of config A (B's branches run with
    `audit=true` in the other slow tests: tests/conftest.py's run_inform), each build's reads
    recorded and checked by `audit=true` (inform/pipeline/audit.py)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    tmp = tmp_path_factory.mktemp("graph")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = validate(hydra_compose(config_name="config", overrides=[
            *CONFIG_A, *FEWER_STEPS, "audit=true", f"paths.artifacts={tmp}/artifacts", f"paths.output_dir={tmp}/out"]))
    GlobalHydra.instance().clear()
    graph.AUDITED.clear()
    done: dict = {}
    for target in TARGETS:
        ensure(target, cfg, done)  # raises when a build reads a key its hash does not cover
    return cfg, dict(graph.AUDITED), tmp


@pytest.mark.slow
def test_every_build_reads_only_keys_its_hash_covers(audited):
    cfg, reads, _ = audited
    assert set(reads) == {"sft", "sft_reward", "sft_gold", "gold", "label", "rm", "rm_member1", "warm", "sft_stats",
                          "sft_train_stats", "ppo", "rloo", "bon"}  # every stage with an artifact was built and audited
    # the recorder sees the reads, down to single values: the labels' noise, PPO's clip, the trainer
    assert {"label_noise", "seed", "data.prompts.n"} <= reads["label"] and "ppo.clip" in reads["ppo"]
    assert {"trainer.precision", "trainer.gradient_clip_val", "sft.lr"} <= reads["sft"]
    assert "trainer.precision" not in reads["label"] and "trainer.accelerator" in reads["label"]
    assert undeclared_reads(reads, cfg) == {}


@pytest.mark.slow
def test_the_audit_fails_on_an_undeclared_read(audited, monkeypatch):
    """Two ways a stage can drift: its declaration loses a key it reads, or its build starts
    reading one that nothing declares. Both are caught."""
    cfg, reads, tmp = audited
    label = graph.STAGES["label"]
    monkeypatch.setitem(graph.STAGES, "label", Stage("label", tuple(k for k in label.keys if k != "label_noise"),
                                                     label.upstream, label.build))
    missing = undeclared_reads(reads, cfg)  # the RL stages read label_noise too (their plot titles), through label's hash
    assert missing["label"] == ["label_noise"] and set(missing) == {"label", "ppo", "rloo", "bon"}
    assert all(keys == ["label_noise"] for keys in missing.values())
    monkeypatch.undo()

    def probe_build(cfg, out, up, fingerprint):  # a new stage whose build reads the RM's learning rate
        (out / "lr").write_text(str(cfg.rm.lr))

    monkeypatch.setitem(graph.STAGES, "probe", Stage("probe", ("seed",), ("sft",), probe_build))
    with pytest.raises(RuntimeError, match=r"audit: stage 'probe' read config keys its hash does not cover: rm\.lr"):
        ensure("probe", cfg)
    assert graph.AUDITED["probe"] == {"rm.lr"}
    assert not [p for p in (tmp / "artifacts").glob("probe-*") if p.is_dir()]  # the unaudited artifact was not committed
    monkeypatch.setitem(graph.STAGES, "probe", Stage("probe", ("seed", "rm.lr"), ("sft",), probe_build))
    assert (ensure("probe", cfg) / "lr").read_text() == str(cfg.rm.lr)  # declared: it builds


@pytest.mark.slow
def test_explain_shows_every_stage_reused_after_the_build(audited):
    cfg, _, tmp = audited
    text = graph.explain("ppo", cfg)
    lines = text.splitlines()[1:]
    assert [line.split()[0] for line in lines] == plan("ppo", cfg)
    assert text.splitlines()[0] == f"stage=pipeline: {len(lines)} stages, 0 to build"
    for line in lines:
        name, digest, status = line.split()[:3]
        if name != "proxy":
            assert status == "reuse" and digest == hash_of(name, cfg)
            assert (tmp / "artifacts" / f"{name}-{digest}" / "COMPLETE").is_file()


def leaves(tree, prefix: str = ""):
    """(dotted key, value) of every leaf of a plain config tree; a list is one leaf."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, tree


def perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return value + (value[-1:] if value else ["x"])
    return f"{value}-x" if value is not None else "x"


def downstream_closure(seeds: set[str], cfg: DictConfig) -> set[str]:
    out = set(seeds)
    changed = True
    while changed:
        changed = False
        for name in all_stages(cfg):
            if name not in out and set(graph.upstream_of(name, cfg)) & out:
                out.add(name)
                changed = True
    return out


def hashes(cfg: DictConfig) -> dict[str, str]:
    memo: dict = {}
    return {name: hash_of(name, cfg, memo) for name in all_stages(cfg)}


def coverage(cfg: DictConfig) -> dict[str, frozenset]:
    """Each leaf key that a stage declares -> the stages whose own keys cover it."""
    stages = all_stages(cfg)
    out = {}
    for key, _ in leaves(OmegaConf.to_container(cfg, resolve=True)):
        if not is_covered(key, RUNTIME_KEYS):
            covering = frozenset(s for s in stages if is_covered(key, keys_of(s, cfg)))
            if covering:
                out[key] = covering
    return out


def test_a_declared_key_changes_its_stage_and_what_is_downstream_and_nothing_else(compose, tmp_path):
    """Every leaf under every declared key of config A; of B, the leaves it declares otherwise."""
    cfg_a = composed(compose, CONFIG_A, tmp_path)
    walked = {"A": walk_declared_keys(cfg_a, coverage(cfg_a)), "B": 0}
    cfg_b = composed(compose, CONFIG_B, tmp_path)
    in_a = coverage(cfg_a)
    walked["B"] = walk_declared_keys(cfg_b, {k: v for k, v in coverage(cfg_b).items() if in_a.get(k) != v})
    assert walked["A"] > 150 and walked["B"] >= 5, walked  # every leaf of every declared section


def walk_declared_keys(cfg: DictConfig, keys: dict[str, frozenset]) -> int:
    """Change each of `keys` alone; assert exactly its stages and those downstream get new hashes."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    work = OmegaConf.create(tree)  # untyped: a leaf may take a value of another type
    base = hashes(work)
    below = {s: downstream_closure({s}, cfg) for s in base}  # each stage and every stage downstream of it
    walked = 0
    for key, value in leaves(tree):
        if key not in keys:
            continue
        OmegaConf.update(work, key, perturbed(value), merge=False)
        after = hashes(work)
        OmegaConf.update(work, key, value, merge=False)
        expected = set().union(*(below[s] for s in keys[key]))
        moved = {s for s in base if s in after and after[s] != base[s]}
        assert moved == {s for s in expected if s in after}, key
        walked += 1
    return walked


def test_runtime_keys_change_no_hash(compose, tmp_path):
    cfg = composed(compose, CONFIG_A, tmp_path)
    base = hashes(cfg)
    for overrides in (["paths.artifacts=elsewhere", "paths.output_dir=there"], ["logger=wandb"], ["name=other", "group=g"],
                      ["trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"], ["stage=rm"]):
        assert hashes(composed(compose, CONFIG_A + overrides, tmp_path)) == base, overrides


def test_sweeps_share_what_a_knob_does_not_touch(compose, tmp_path):
    """beta reaches the proxy RM and what uses it; SFT, gold and labels are shared by the sweep."""
    a, b = (hashes(composed(compose, TINY + [f"beta={v}"], tmp_path)) for v in (0.1, 0.01))
    assert {s for s in a if a[s] != b[s]} == {"rm", "proxy", "sft_stats", "sft_train_stats", "ppo", "rloo", "bon"}
    a, b = (hashes(composed(compose, TINY + [f"kl_coef={v}"], tmp_path)) for v in (0.05, 0.2))
    assert {s for s in a if a[s] != b[s]} == {"ppo", "rloo"}


def test_data_seed_redraws_the_synthetic_sets_and_every_stage_that_reads_them(compose, tmp_path):
    """data.seed 0 is the data set every run has used (source seed s); k draws it from s + 1000 k."""
    from hydra.utils import instantiate

    from inform.config import ConfigError
    from inform.data import synthetic

    a, b = (composed(compose, TINY + [f"data.seed={v}"], tmp_path) for v in (0, 1))
    assert instantiate(a.data.prompts)["prompt"][:50] == [r["prompt"] for r in synthetic.prompts(200, 3)[:50]]
    assert instantiate(b.data.prompts)["prompt"][:50] == [r["prompt"] for r in synthetic.prompts(200, 1003)[:50]]
    assert instantiate(a.data.prompts)["prompt"][:50] != instantiate(b.data.prompts)["prompt"][:50]
    ha, hb = hashes(a), hashes(b)
    assert {s for s in ha if ha[s] != hb[s]} == set(ha)  # every stage reads a data set
    with pytest.raises(ConfigError, match=r"data\.seed: the data set 'hh_rlhf' reads fixed rows"):
        composed(compose, ["data=hh_rlhf", "data.seed=1"], tmp_path)


def test_a_deepspeed_trainer_gets_its_own_artifacts(compose, tmp_path):
    cpu = composed(compose, ["trainer=cpu"], tmp_path)
    z3 = composed(compose, ["trainer=deepspeed_zero3", "trainer.precision=32-true"], tmp_path)
    assert hash_of("sft", cpu) != hash_of("sft", z3)
    static = composed(compose, ["ppo.kv_cache=static"], tmp_path)
    assert hash_of("ppo", static) != hash_of("ppo", cpu) and hash_of("rm", static) == hash_of("rm", cpu)


def test_a_key_the_table_names_must_exist(compose, tmp_path, monkeypatch):
    cfg = composed(compose, [], tmp_path)
    monkeypatch.setitem(graph.STAGES, "label", Stage("label", ("label_nosie",), (), None))
    with pytest.raises(KeyError, match="label_nosie"):
        hash_of("label", cfg)


def test_explain_on_the_command_line_trains_nothing(tmp_path):
    proc = run_inform("experiment=smoke", "stage=rloo", "explain=true", cwd=tmp_path, timeout=300)
    assert "stage=rloo: 8 stages, 7 to build" in proc.stdout
    assert [line.split()[0] for line in proc.stdout.split("stage=rloo:")[1].splitlines()[1:9]] == [
        "sft", "gold", "label", "rm", "proxy", "sft_stats", "sft_train_stats", "rloo"]
    assert not (tmp_path / "artifacts").exists()


# --- imports ------------------------------------------------------------------------------------

LOWER = ("objectives", "rl", "models", "data", "detect")


def module_imports() -> dict[str, set[str]]:
    """inform's modules -> the inform modules each imports (at any depth of the file: function-level too)."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / "inform").rglob("*.py")}
    graph_ = {}
    for mod, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("inform")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("inform"):
                for a in node.names:  # `from inform.runtime import ranks` imports the module inform.runtime.ranks
                    deps.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module)
        graph_[mod] = {d for d in deps if d in files and d != mod and d != "inform"}
    return graph_


def test_imports_run_one_way_with_no_circle():
    imports = module_imports()
    package = lambda m: m.split(".")[1] if m.count(".") else ""  # noqa: E731
    for mod, deps in imports.items():
        if package(mod) == "runtime":
            assert not {d for d in deps if package(d) == "pipeline"}, f"{mod} imports a stage"
        if package(mod) in LOWER:
            assert not {d for d in deps if package(d) in ("pipeline", "runtime", "modules")}, f"{mod} imports {deps}"
    # no circle of any length: a topological order exists
    remaining = {m: set(d) for m, d in imports.items()}
    while remaining:
        free = [m for m, d in remaining.items() if not d]
        assert free, f"import circle among {sorted(remaining)}"
        for m in free:
            del remaining[m]
        for d in remaining.values():
            d.difference_update(free)
    assert "inform.runtime.cache" in imports and "inform.pipeline.graph" in imports


def test_every_stage_file_names_a_stage_of_the_table(compose, tmp_path):
    """`stage=X` for each conf/stage/X.yaml dispatches through the table (pipeline: ppo; rm: the proxy)."""
    names = sorted(p.stem for p in (ROOT / "conf" / "stage").glob("*.yaml"))
    assert names == ["bon", "gold", "label", "pipeline", "ppo", "rloo", "rm", "sft"]
    targets = {n: graph.target_of(composed(compose, [f"stage={n}"], tmp_path)) for n in names}
    assert targets == {**{n: n for n in names}, "pipeline": "ppo", "rm": "proxy"}
    assert all(t in graph.STAGES for t in targets.values())
    with pytest.raises(KeyError, match="no stage 'rm_member0'"):
        graph.stage("rm_member0")
