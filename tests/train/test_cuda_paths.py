"""The CUDA paths for real: PPO/GRPO learner updates on a GPU (fp32 parity with CPU, bf16 autocast), device
resolution, text GRPO on CUDA, and `dspy-rl train` with the learner on CUDA. Skipped where torch sees no GPU."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dspy_rl.learners.grpo_env import GRPOEnvLearner, GRPOHyper
from dspy_rl.learners.learner_group import LearnerGroup, resolve_device
from dspy_rl.learners.ppo import PPOHyper, PPOLearner
from dspy_rl.models.policy import POLICIES, MultiPolicy
from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec

from ._helpers import BACKEND, FAST

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
)

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _tensor_devices(x: object) -> set[str]:
    """The device types of every tensor in ``x`` (nested dicts, lists and tuples)."""
    if isinstance(x, torch.Tensor):
        return {x.device.type}
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (list, tuple)):
        return set().union(*(_tensor_devices(v) for v in x))
    return set()


@pytest.fixture(autouse=True)
def _exact_fp32_matmuls():
    """fp32 parity needs full-precision matmuls on the GPU (TF32 would round them to 10 mantissa bits)."""
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


@pytest.fixture(scope="module")
def rollout() -> dict[str, np.ndarray]:
    """One real PPO batch of the default settings' shape (512 envs x 16 steps) from the env and an untrained policy."""
    runner = EnvRunner(
        {"num_envs": 512, "suite": "default", "backend": BACKEND}, RolloutSpec(16, 0.99, 0.95, 64), 0
    )
    info = runner.env_info()
    torch.manual_seed(0)
    policy = MultiPolicy(info["obs_dim"], info["num_tools"], info["num_args"], 64)
    from dspy_rl.models.policy import state_to_numpy

    batch = runner.sample(state_to_numpy(policy), 16)
    batch["spec"] = {k: info[k] for k in ("obs_dim", "num_tools", "num_args")}
    return batch


def _model(spec: dict[str, int], seed: int = 0) -> MultiPolicy:
    torch.manual_seed(seed)
    return MultiPolicy(**spec, hidden=64)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def test_auto_device_resolves_to_cuda() -> None:
    from dspy_rl.grpo.run import resolve_device as grpo_resolve_device

    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda").type == "cuda"
    assert grpo_resolve_device("auto").type == "cuda"
    group = LearnerGroup(
        {"obs_dim": 8, "num_tools": 5, "num_args": 3, "hidden": 16}, PPOHyper(), 0, "auto", 0, False
    )
    assert group.local is not None and group.local.device.type == "cuda"
    assert all(p.is_cuda for p in group.local.model.parameters())
    assert all(p.is_cuda for p in group.local.flat.values())
    # weights for the (CPU) runners come back as numpy arrays
    w = group.weights()
    assert all(isinstance(v, np.ndarray) for v in w.values())


def test_ppo_gradients_on_cuda_equal_cpu_in_fp32(rollout: dict[str, np.ndarray]) -> None:
    """Same model, same minibatch: the loss and every gradient agree between CPU and CUDA in fp32."""
    spec = rollout["spec"]
    hp = PPOHyper()
    learners = {d: PPOLearner(_model(spec), hp, d) for d in (CPU, CUDA)}
    grads = {}
    losses = {}
    for d, learner in learners.items():
        data = {k: torch.from_numpy(np.ascontiguousarray(rollout[k])).to(d) for k in learner.keys}
        learner._prepare(data)
        loss, _ = learner._losses(data)
        losses[d] = float(loss.detach())
        grads[d] = [g.cpu() for g in torch.autograd.grad(loss, list(learner.model.parameters()))]
    assert losses[CUDA] == pytest.approx(losses[CPU], rel=1e-5, abs=1e-6)
    for gc, gg in zip(grads[CPU], grads[CUDA], strict=True):
        torch.testing.assert_close(gg, gc, rtol=1e-4, atol=1e-6)


def test_ppo_update_on_cuda_matches_cpu_in_fp32(rollout: dict[str, np.ndarray]) -> None:
    """Three updates with the default PPO settings on each device: same metrics and weights (fp32 tolerance)."""
    spec = rollout["spec"]
    hp = PPOHyper(lr=0.01, epochs=1, minibatch_size=4096)
    learners = {d: PPOLearner(_model(spec), hp, d, seed=0) for d in (CPU, CUDA)}
    metrics: dict[torch.device, list[dict[str, float]]] = {CPU: [], CUDA: []}
    for _ in range(3):
        for d, learner in learners.items():
            metrics[d].append(learner.update(rollout))
    for mc, mg in zip(metrics[CPU], metrics[CUDA], strict=True):
        assert mc.keys() == mg.keys()
        for k in mc:
            assert math.isfinite(mg[k]), k
            assert mg[k] == pytest.approx(mc[k], rel=2e-3, abs=2e-5), k
    state_cpu, state_gpu = _cpu_state(learners[CPU].model), _cpu_state(learners[CUDA].model)
    init = _cpu_state(_model(spec))
    for k in state_cpu:
        moved = (state_cpu[k] - init[k]).abs().max()
        torch.testing.assert_close(state_gpu[k], state_cpu[k], rtol=1e-3, atol=1e-4, msg=k)
        if "weight" in k:
            assert moved > 1e-4, f"{k} did not move: the comparison would be vacuous"
    # the flat optimizer views stayed on the device and still alias the module's parameters
    for p in POLICIES:
        flat = learners[CUDA].flat[p]
        assert flat.is_cuda
        assert learners[CUDA].params[p][0].data_ptr() == flat.data_ptr()


def _fp32_loss(learner: PPOLearner, rollout: dict[str, np.ndarray]) -> float:
    data = {k: torch.from_numpy(np.ascontiguousarray(rollout[k])).to(learner.device) for k in learner.keys}
    learner._prepare(data)
    amp, learner.amp = learner.amp, False
    try:
        with torch.no_grad():
            loss, _ = learner._losses(data)
    finally:
        learner.amp = amp
    return float(loss)


def test_bf16_autocast_update_runs_finite_and_lowers_the_loss(rollout: dict[str, np.ndarray]) -> None:
    spec = rollout["spec"]
    hp = PPOHyper(lr=3e-3, epochs=4, minibatch_size=2048)
    learner = PPOLearner(_model(spec), hp, CUDA, seed=0, mixed_precision=True)
    assert learner.amp
    seen: list[torch.dtype] = []
    hook = learner.model.nets["B"].actor[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = _fp32_loss(learner, rollout)
    hook.remove()
    seen.clear()
    hook = learner.model.nets["B"].actor[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    history = [learner.update(rollout) for _ in range(10)]
    hook.remove()
    assert seen and all(dt == torch.bfloat16 for dt in seen), seen  # autocast really ran the linears in bf16
    for m in history:
        assert all(math.isfinite(v) for v in m.values()), m
    assert all(p.dtype == torch.float32 for p in learner.model.parameters())  # master weights stay fp32
    after = _fp32_loss(learner, rollout)
    assert after < before - 0.05 * abs(before), (before, after)
    assert history[-1]["loss"] < history[0]["loss"], (history[0]["loss"], history[-1]["loss"])


def test_bf16_update_stays_close_to_fp32(rollout: dict[str, np.ndarray]) -> None:
    """One bf16 update moves the weights like the fp32 one, to bf16's precision."""
    spec = rollout["spec"]
    hp = PPOHyper(lr=0.01, epochs=1, minibatch_size=4096)
    fp32 = PPOLearner(_model(spec), hp, CUDA, seed=0)
    bf16 = PPOLearner(_model(spec), hp, CUDA, seed=0, mixed_precision=True)
    m32, m16 = fp32.update(rollout), bf16.update(rollout)
    assert m16["loss"] == pytest.approx(m32["loss"], rel=0.05, abs=0.02)
    init = _cpu_state(_model(spec))
    s32, s16 = _cpu_state(fp32.model), _cpu_state(bf16.model)
    for k in s32:
        step32, step16 = s32[k] - init[k], s16[k] - init[k]
        if step32.abs().max() > 1e-3:  # Adam's first step is ~lr * sign(grad): the directions must agree
            agree = (torch.sign(step32) == torch.sign(step16))[step32.abs() > 1e-3].float().mean()
            assert agree > 0.9, (k, float(agree))


@pytest.mark.parametrize("mixed_precision", [False, True])
def test_env_grpo_learner_on_cuda(rollout: dict[str, np.ndarray], mixed_precision: bool) -> None:
    spec = rollout["spec"]
    batch = {k: rollout[k] for k in GRPOEnvLearner.keys if k != "adv"}
    batch["adv"] = np.random.default_rng(0).standard_normal(len(batch["obs"])).astype(np.float32)
    hp = GRPOHyper(lr=3e-3, epochs=2, minibatch_size=2048, kl_warmup=2)
    learners = {
        d: GRPOEnvLearner(_model(spec), hp, d, seed=0, mixed_precision=mixed_precision and d.type == "cuda")
        for d in (CPU, CUDA)
    }
    out = {d: [learner.update(batch) for _ in range(3)] for d, learner in learners.items()}
    for m in out[CUDA]:
        assert all(math.isfinite(v) for v in m.values()), m
    assert out[CUDA][-1]["kl_beta"] > 0 and out[CUDA][-1]["A/kl"] > 0
    if not mixed_precision:
        for mc, mg in zip(out[CPU], out[CUDA], strict=True):
            for k in mc:
                assert mg[k] == pytest.approx(mc[k], rel=5e-3, abs=5e-5), k
    # the reference stays frozen on the device, the critics untouched
    g = learners[CUDA]
    assert all(p.is_cuda and not p.requires_grad for p in g.reference.parameters())
    init = _cpu_state(_model(spec))
    now = _cpu_state(g.model)
    assert all(torch.equal(now[k], init[k]) for k in now if ".critic." in k)
    assert any(not torch.equal(now[k], init[k]) for k in now if ".actor." in k)


def test_learner_state_dict_from_cuda_is_on_cpu_and_loads_into_a_cpu_learner(
    rollout: dict[str, np.ndarray],
) -> None:
    """A checkpoint written by a CUDA learner holds CPU tensors only (it must load where there is no GPU, and
    through Ray from a GPU learner actor), and a CPU learner restored from it continues identically."""
    spec = rollout["spec"]
    hp = PPOHyper()
    gpu = PPOLearner(_model(spec), hp, CUDA, seed=0)
    gpu.update(rollout)
    state = gpu.state_dict()
    assert _tensor_devices(state) == {"cpu"}
    cpu = PPOLearner(_model(spec, seed=1), hp, CPU, seed=5)
    cpu.load_state_dict(copy.deepcopy(state))
    gpu2 = PPOLearner(_model(spec, seed=1), hp, CUDA, seed=5)
    gpu2.load_state_dict(copy.deepcopy(state))
    mc, mg = cpu.update(rollout), gpu2.update(rollout)
    for k in mc:
        assert mg[k] == pytest.approx(mc[k], rel=2e-3, abs=2e-5), k


def test_text_grpo_trainer_step_on_cuda() -> None:
    """GRPOTextTrainer with the bag-of-words policy on CUDA (bf16 autocast): the loss gradient under the trainer's
    autocast matches the fp32 CPU gradient, an update gives finite metrics and moves the rewarded responses up,
    and sampling runs with a generator on the GPU.

    (The weights after an update are not compared across devices: from a zero init, AdamW's first steps are
    about ``lr * sign(grad)`` for every entry, so exactly-cancelling gradient entries turn rounding noise into
    full-size steps of either sign, on CPU as on CUDA.)"""
    from dspy_rl.grpo.config import GRPOTrainConfig
    from dspy_rl.grpo.trainer import GRPOTextTrainer
    from dspy_rl.learners.grpo import group_advantages, grpo_loss
    from dspy_rl.models.bow import BagOfWordsLM, WordVocab

    texts = ["list files", "ls", "cat readme", "pytest -q", "git status", "run tests"]
    prompts = ["list files"] * 4 + ["run tests"] * 4
    choice = ["ls", "cat", "pytest", "git", "ls", "cat", "pytest", "git"]
    rewards = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    groups = [0] * 4 + [1] * 4
    cfg = GRPOTrainConfig(mode="online", lr=0.1, kl_target=0.01, updates_per_batch=2)

    torch.manual_seed(0)
    cpu_policy = BagOfWordsLM(WordVocab.build(texts))
    for p in cpu_policy.parameters():  # a non-degenerate point (the zero init makes every logit equal)
        torch.nn.init.normal_(p, std=0.5)
    grads = {}
    for d in (CPU, CUDA):
        policy = copy.deepcopy(cpu_policy).to(d)
        trainer = GRPOTextTrainer(policy, cfg)
        batch = policy.encode(prompts, [policy.tokenize_response(c) for c in choice])
        adv = group_advantages(torch.tensor(rewards), torch.tensor(groups)).to(d)
        with trainer._autocast:
            logp, mask = policy.token_logprobs(batch)
        out = grpo_loss(logp, logp.detach(), adv, mask)
        grads[d] = torch.cat(
            [g.reshape(-1).float().cpu() for g in torch.autograd.grad(out.loss, list(policy.parameters()))]
        )
    cos = torch.nn.functional.cosine_similarity(grads[CPU], grads[CUDA], dim=0)
    assert cos > 0.999, float(cos)
    torch.testing.assert_close(grads[CUDA], grads[CPU], rtol=0.02, atol=2e-3 * float(grads[CPU].abs().max()))

    policy = BagOfWordsLM(WordVocab.build(texts)).to(CUDA)
    trainer = GRPOTextTrainer(policy, cfg)
    assert isinstance(trainer._autocast, torch.autocast) and trainer._autocast.fast_dtype == torch.bfloat16
    responses = [policy.tokenize_response(c) for c in choice]
    batch = policy.encode(prompts, responses)
    with torch.no_grad():
        before = policy.token_logprobs(batch)[0].sum(1).cpu()
    metrics = trainer.update(prompts, responses, rewards, groups)
    with torch.no_grad():
        after = policy.token_logprobs(batch)[0].sum(1).cpu()
    assert all(math.isfinite(float(v)) for v in metrics.values() if isinstance(v, (int, float))), metrics
    assert metrics["updates"] == 2 and metrics["skipped"] == 0
    delta = after - before
    assert delta[0] > 0 and delta[6] > 0, delta  # the rewarded responses became likelier
    assert delta[1] < 0 and delta[5] < 0, delta
    assert all(p.is_cuda and p.dtype == torch.float32 for p in policy.parameters())
    gen = torch.Generator(device=CUDA).manual_seed(0)
    out = policy.sample(["list files"], 3, generator=gen, repeats=4)
    assert len(out) == 4 and all(1 <= len(r) <= 3 for r in out)


def test_online_text_grpo_run_on_cuda(tmp_path: Path) -> None:
    """`dspy-rl grpo train` online with device=cuda: the bag-of-words policy's reward rises as on CPU."""
    from dspy_rl.config import compose, to_object
    from dspy_rl.grpo.config import GRPOTrainConfig
    from dspy_rl.grpo.run import train

    base = ["mode=online", "task=tool_commands", "logging.progress_bar=false", "logging.tensorboard=false", "max_new_tokens=4",
            f"run_dir={tmp_path / 'run'}", "logging.log_every=10", "device=cuda"]  # fmt: skip
    cfg = to_object(
        compose("grpo", [*base, "model=bow", "steps=60", "lr=0.05", "eval_every=60", "seed=1"]),
        GRPOTrainConfig,
    )
    summary = train(cfg)
    assert summary.eval_reward[0] <= 0.05
    assert summary.eval_reward[60] >= 0.25, summary.eval_reward
    assert (tmp_path / "run" / "final" / "model.pt").is_file()
    # the saved weights load on a CPU-only process
    state = torch.load(tmp_path / "run" / "final" / "model.pt", map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())


def test_online_tiny_gpt2_run_on_cuda(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from dspy_rl.config import compose, to_object
    from dspy_rl.grpo.config import GRPOTrainConfig
    from dspy_rl.grpo.run import train
    from dspy_rl.utils.run_logger import read_metrics

    cfg = to_object(
        compose(
            "grpo",
            [
                "mode=online",
                "task=tool_commands",
                "logging.progress_bar=false",
                "logging.tensorboard=false",
                "max_new_tokens=4",
                f"run_dir={tmp_path / 'run'}",
                "model=tiny-gpt2",
                "tiny_layers=1",
                "tiny_embd=32",
                "steps=3",
                "group_size=4",
                "batch_groups=2",
                "logging.log_every=1",
                "device=cuda",
            ],  # fmt: skip
        ),
        GRPOTrainConfig,
    )
    summary = train(cfg)
    rows = read_metrics(tmp_path / "run")
    assert summary.steps == 3 and [r["step"] for r in rows] == [0, 1, 2]
    assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("mixed_precision", [False, True])
def test_run_training_with_the_learner_on_cuda(tmp_path: Path, mixed_precision: bool) -> None:
    """`dspy-rl train runtime.device=cuda` (runner and learner in the driver): it learns, checkpoints hold CPU
    tensors, and a CPU run resumes from the CUDA run's checkpoint."""
    from dspy_rl.trainer import run_training
    from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint

    total = 2048 * 64
    run_dir = tmp_path / "run"
    result = run_training(
        [
            *FAST,
            "runtime.num_learners=0",
            "runtime.device=cuda",
            f"runtime.mixed_precision={str(mixed_precision).lower()}",
            f"total_env_steps={total}",
            "seed=1",
            f"run_dir={run_dir}",
            f"eval_episodes={256 if not mixed_precision else 0}",
        ]
    )
    rows = _rows(run_dir)
    if not mixed_precision:  # the final evaluation loads the CUDA run's checkpoint into a CPU policy
        assert result["eval_episodes"] >= 256 and result["eval_success_rate"] >= 0.5, result
    assert result["env_steps"] == total
    assert rows[0]["iter_success_rate"] < 0.3
    assert result["success_rate"] >= 0.6, result
    assert all(math.isfinite(r["loss"]) for r in rows if "eval_episodes" not in r)
    ckpt_path = latest_checkpoint(run_dir)
    raw = torch.load(ckpt_path, map_location=None, weights_only=False)  # as written, no remapping
    assert _tensor_devices(raw["learner"]) == {"cpu"}
    assert load_checkpoint(ckpt_path)["env_steps"] == total
    resumed = run_training(
        [*FAST, "runtime.device=cpu", f"total_env_steps={total + 4096}", f"resume={run_dir}"]
    )
    assert resumed["env_steps"] == total + 4096 and math.isfinite(_rows(run_dir)[-1]["loss"])


def _learner_batch(rollout: dict[str, np.ndarray], hp: PPOHyper) -> dict[str, np.ndarray]:
    from dspy_rl.learners.learner_group import batch_keys

    return {k: rollout[k] for k in batch_keys(hp)}


def test_one_ddp_learner_actor_trains_on_the_gpu(ray_session, rollout: dict[str, np.ndarray]) -> None:
    """`runtime.num_learners=1` on CUDA: a Ray learner actor holding the GPU (NCCL, world size 1) makes the same
    update as a learner in the driver on CUDA."""
    spec = rollout["spec"] | {"hidden": 64}
    hp = PPOHyper(minibatch_size=1024)
    group = LearnerGroup(spec, hp, num_learners=1, device="cuda", seed=3)
    try:
        actor = group.actors[0]
        where = ray_session.get(
            actor.__ray_call__.remote(lambda self: str(next(self.learner.model.parameters()).device))
        )
        assert where == "cuda:0"
        torch.manual_seed(3)  # as the actor does before building its model
        local = PPOLearner(MultiPolicy(**spec), hp, CUDA, 3, False)
        m_actor = group.update(_learner_batch(rollout, hp))
        m_local = local.update(_learner_batch(rollout, hp))
        assert math.isfinite(m_actor["loss"]) and m_actor["loss"] == pytest.approx(
            m_local["loss"], rel=1e-4, abs=1e-5
        )
        w = group.weights()
        ref = {k: v.detach().cpu().numpy() for k, v in local.model.state_dict().items()}
        assert all(np.allclose(w[k], ref[k], atol=1e-5) for k in ref)
    finally:
        group.shutdown()


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="checks the one-GPU case")
def test_two_cuda_learner_actors_on_one_gpu_fail_clearly(ray_session) -> None:
    from dspy_rl.config import ConfigError

    spec = {"obs_dim": 5, "num_tools": 3, "num_args": 2, "hidden": 8}
    with pytest.raises(ConfigError, match="needs 2 GPUs"):
        LearnerGroup(spec, PPOHyper(minibatch_size=32), num_learners=2, device="cuda", seed=0)


@pytest.mark.parametrize("num_learners", [0, 1])
def test_single_gpu_runtime_with_runner_actors(ray_session, tmp_path: Path, num_learners: int) -> None:
    """`dspy-rl train runtime=single_gpu` (two EnvRunner actors on CPU, the learner on CUDA in the driver, or in
    a learner actor holding the GPU): it learns and writes checkpoints."""
    from dspy_rl.trainer import run_training
    from dspy_rl.utils.checkpoint import latest_checkpoint

    total = 2048 * 64
    run_dir = tmp_path / "run"
    result = run_training(
        [
            "runtime=single_gpu",
            *FAST,
            "runtime.num_env_runners=2",
            f"runtime.num_learners={num_learners}",
            f"total_env_steps={total}",
            "seed=1",
            f"run_dir={run_dir}",
        ]  # fmt: skip
    )
    assert result["env_steps"] == total and result["num_env_runners"] == 2
    assert result["success_rate"] >= 0.6, result
    assert latest_checkpoint(run_dir) is not None
