"""The jobs of ``book/05_effect_alignment/ead.md``: one module-level function per kind of cell.

- :func:`train_experts`: the expert run EAD reads, or MTT's buffer, trained (or loaded) on its own
  so that neither method's clock includes it;
- :func:`distil_cell`: Chapter 1's condense-then-evaluate cell
  (:func:`ddrepro.experiment.condense_and_evaluate`), after the method's experts, optionally with
  the condensation's loss trace (``record_every``);
- :func:`soft_start_cell`: EAD's starting point, the random real images with the expert's soft
  labels, evaluated with no EAD step;
- :func:`cost_cell`: wall time per step and peak memory of one short run of a method, measured in
  a fresh process and cached;
- :func:`gradient_evaluations`, :func:`matched_mtt`, :func:`equal_batches`: the compute of a step
  in gradient evaluations, MTT at EAD's compute, the three methods at equal batch sizes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..artifacts import cached
from ..condense import condense
from ..condense.ead import EADConfig
from ..condense.expert import expert_recipe, train_buffer
from ..condense.mtt import MTTConfig, evaluation_recipe
from ..config import AugConfig, EvalConfig, NetConfig
from ..evaluate import EvalResult, evaluate
from ..experiment import condense_and_evaluate
from ..memory import PeakMemory
from ..profiles import Profile
from ..runtime import resolve_device
from ..synthetic import SyntheticSet
from ..trajectory import expert_trajectory

TRACED = ("ead", "mtt")  # the methods whose cells keep their loss trace (record_every)
COSTED = ("ead", "mtt", "dm")  # the methods timed and measured at equal batch sizes


def eval_config(prof: Profile) -> EvalConfig:
    """The page's evaluation recipe: the profile's, with ``effects.eval_models`` networks."""
    n = prof.effects.eval_models
    return prof.eval if n is None else dataclasses.replace(prof.eval, n_models=n)


def record_every(config: Any) -> int:
    """The loss trace's spacing: about 100 records over the run."""
    return max(1, config.steps // 100)


def train_experts(real: Any, *, method: str, config: Any, net_cfg: NetConfig, aug_cfg: AugConfig,
                  seed: int, device: str | torch.device, quiet: bool | None) -> Any:
    """The expert run ``method`` reads (cached; None for a method that reads none).

    EAD: one plain SGD run with its trajectory (:func:`ddrepro.trajectory.expert_trajectory`,
    the very call of :func:`ddrepro.condense.expert.expert_for`); MTT: its authors' buffer
    (:func:`ddrepro.condense.expert.train_buffer`, as :func:`~ddrepro.condense.expert.expert_buffer`
    calls it). Trained here, before the condenser runs, so its ``meta["seconds"]`` (Alg. 1's
    loop, MTT's Algorithm 1) holds no expert training.
    """
    if method not in TRACED:
        return None
    dev = resolve_device(device)
    images, labels = real.images.to(dev), real.labels.to(dev)
    if method == "ead":
        return expert_trajectory(images, labels, num_classes=real.num_classes, net_cfg=net_cfg,
                                 eval_cfg=expert_recipe(config), record_every=config.checkpoint_every,
                                 seed=seed, device=dev, quiet=quiet)
    return train_buffer(images, labels, num_classes=real.num_classes, net_cfg=net_cfg, cfg=config,
                        n_experts=config.n_experts, aug_cfg=aug_cfg if config.dsa else None,
                        flip=real.flip_ok, seed=seed, device=dev, quiet=quiet)


def distil_cell(*, method: str, real: Any, test: Any, ipc: int, config: Any, seed: int,
                net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                device: str | torch.device, quiet: bool | None,
                record_every: int | None = None) -> tuple[SyntheticSet, EvalResult]:
    """Condense ``real`` with ``method`` and evaluate the set (both cached), experts first.

    Without ``record_every``: :func:`ddrepro.experiment.condense_and_evaluate`, argument for
    argument. With it, the same two calls with the condensation's records every
    ``record_every`` steps (``syn.history["loss"]``, the loss trace; records change the
    artifact, not the images), the set evaluated as ``condense_and_evaluate`` does (at MTT's
    learned step, :func:`ddrepro.condense.mtt.evaluation_recipe`).
    """
    train_experts(real, method=method, config=config, net_cfg=net_cfg, aug_cfg=aug_cfg, seed=seed,
                  device=device, quiet=quiet)
    if record_every is None:
        return condense_and_evaluate(method=method, real=real, test=test, ipc=ipc, config=config,
                                     seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg, eval_cfg=eval_cfg,
                                     device=device, quiet=quiet)
    syn = condense(method, real, ipc, config=config, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                   record_every=record_every, device=device, quiet=quiet)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=evaluation_recipe(syn, eval_cfg),
                      aug_cfg=aug_cfg, seed=seed, flip=real.flip_ok, device=device, quiet=quiet)
    return syn, result


def soft_start_cell(*, real: Any, test: Any, ipc: int, config: EADConfig, seed: int,
                    net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                    device: str | torch.device, quiet: bool | None) -> tuple[SyntheticSet, EvalResult]:
    """EAD's start with no EAD step: the ``random`` cell's real images (the same seed draws the
    same rows), labelled softly by EAD's expert (Alg. 1's initialisation), and evaluated."""
    expert = train_experts(real, method="ead", config=config, net_cfg=net_cfg, aug_cfg=aug_cfg,
                           seed=seed, device=device, quiet=quiet)
    start = condense("random", real, ipc, config=None, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                     device=device, quiet=quiet)
    with torch.no_grad():
        soft = expert.predict(start.images.to(expert_device(expert)))[0].softmax(1).cpu()
    labelled = SyntheticSet(start.images, soft, start.mean, start.std,
                            {"method": "real + soft labels", "seeds": seed})
    result = evaluate(labelled, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=real.flip_ok, device=device, quiet=quiet)
    return labelled, result


def expert_device(models: Any) -> torch.device:
    """Where a :class:`~ddrepro.models.TrainedModels`' parameters live."""
    return next(iter(models.params.values())).device


# ----------------------------------------------------------------------------- compute

def gradient_evaluations(method: str, config: Any, n_syn: int, num_classes: int) -> int:
    """Per-image gradient evaluations of one step of ``method``, a backward through a gradient
    (a Hessian-vector product, Pearlmutter 1994) counted as one more.

    EAD (Alg. 1): at each of ``t_m`` checkpoints the gradients on D_p and D_t (``batch_real``
    each) and on S_t (``batch_syn``), then the backward of Eq. 7 through the synthetic
    gradient: ``t_m (2 batch_real + 2 batch_syn)``. MTT (Algorithm 1): ``N`` student steps on
    batches of ``batch_syn`` (the whole set when None), each kept for the backward through all
    of them: ``2 N batch_syn``. DM: one forward and backward of a random network through
    ``batch_real`` real images per class and the whole synthetic set (no gradient in parameters:
    counted as one evaluation per image).
    """
    if method == "ead":
        b_syn = min(config.batch_syn, n_syn)
        return config.t_m * (2 * config.batch_real + 2 * b_syn)
    if method == "mtt":
        b_syn = n_syn if config.batch_syn is None else min(config.batch_syn, n_syn)
        return 2 * config.syn_steps * b_syn
    if method == "dm":
        return config.batch_real * num_classes + n_syn
    raise ValueError(f"no gradient count for method {method!r}; known: ead, mtt, dm.")


def batch_sizes(method: str, config: Any, n_syn: int, num_classes: int) -> dict[str, int]:
    """The images one step of ``method`` computes on: synthetic images per student or EAD batch,
    real images per real batch, and the batches of each per step."""
    if method == "ead":
        return {"synthetic": min(config.batch_syn, n_syn), "real": config.batch_real,
                "batches": config.t_m, "real batches": 2}  # D_p and D_t at each checkpoint
    if method == "mtt":
        return {"synthetic": n_syn if config.batch_syn is None else min(config.batch_syn, n_syn),
                "real": 0, "batches": config.syn_steps, "real batches": 0}
    if method == "dm":
        return {"synthetic": n_syn, "real": config.batch_real * num_classes, "batches": 1,
                "real batches": 1}
    raise ValueError(f"no batch sizes for method {method!r}; known: {', '.join(COSTED)}.")


def matched_mtt(ead: EADConfig, mtt: MTTConfig, ipc: int, num_classes: int) -> MTTConfig:
    """``mtt`` with as many iterations as give EAD's run's gradient evaluations (rounded, >= 1)."""
    n_syn = ipc * num_classes
    total = ead.steps * gradient_evaluations("ead", ead, n_syn, num_classes)
    per_step = gradient_evaluations("mtt", mtt, n_syn, num_classes)
    return dataclasses.replace(mtt, steps=max(1, round(total / per_step)))


def equal_batches(prof: Profile, method: str, config: Any, ipc: int, num_classes: int) -> Any:
    """``config`` at EAD's batch sizes, ``effects.cost_steps`` steps: ``b_syn`` synthetic images a
    step (EAD's ``batch_syn``, capped by the set; MTT's student batch) and ``b_real`` real images
    per real batch (EAD's ``batch_real``; DM's per class: ``b_real // C``, DM matches the whole
    synthetic set)."""
    b_syn, b_real = min(prof.ead.batch_syn, ipc * num_classes), prof.ead.batch_real
    changes: dict[str, Any] = {"steps": prof.effects.cost_steps}
    if method == "ead":
        changes |= {"batch_syn": b_syn, "batch_real": b_real}
    elif method == "mtt":
        changes |= {"batch_syn": b_syn}
    elif method == "dm":
        changes |= {"batch_real": max(1, b_real // num_classes)}
    else:
        raise ValueError(f"no equal-batch config for method {method!r}; known: {', '.join(COSTED)}.")
    return dataclasses.replace(config, **changes)


# ----------------------------------------------------------------------------- time and memory

def _measure(payload: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: one warm-up step (libraries and kernels load, not the method's memory),
    then the run, its wall seconds (``meta["seconds"]``: the condenser's loop) and peak memory."""
    torch.set_num_threads(payload["threads"])  # the caller's share of the cores (a Ray task's)
    dev = torch.device(payload["device"])
    kwargs = payload["kwargs"]
    config = kwargs.pop("config")
    condense(config=dataclasses.replace(config, steps=1), device=dev, quiet=True, cache=False, **kwargs)
    with PeakMemory(dev) as peak:
        syn = condense(config=config, device=dev, quiet=True, cache=False, **kwargs)
    return {"seconds": float(syn.meta["seconds"]), "steps": config.steps, "rss_peak_mib": peak.rss_mib,
            "device": str(dev), "memory": f"{peak.how} the run (fresh process)", "peak_mib": peak.mib}


def cost_cell(*, method: str, real: Any, ipc: int, config: Any, seed: int, net_cfg: NetConfig,
              aug_cfg: AugConfig, device: str | torch.device, quiet: bool | None) -> dict[str, Any]:
    """Wall seconds and peak memory of one run of ``method`` (cached artifact ``effects_cost``).

    The experts are trained (or loaded) first, here; the run itself goes to a fresh Python
    process (one method's freed memory cannot hide another's peak; a Ray worker or a notebook
    kernel has a history), with large blocks always ``mmap``'d (``MALLOC_MMAP_THRESHOLD_``) so
    that freed memory leaves the resident set. Peak memory: on CUDA,
    ``torch.cuda.max_memory_allocated`` during the run minus what was allocated before it; on
    the CPU, the peak resident set (``VmHWM``, reset after a one-step warm-up) minus the
    resident set before the run. The run uses this process's torch threads. Either includes the expert trajectory the method loads and
    the real set on the device. ``meta["seconds"]`` is the condenser's loop alone.
    """
    dev = resolve_device(device)
    parts = {"method": method, "config": config, "ipc": ipc, "seed": seed, "net": net_cfg,
             "aug": aug_cfg, "data": real.digest(), "device": dev.type}

    def compute() -> dict[str, Any]:
        train_experts(real, method=method, config=config, net_cfg=net_cfg, aug_cfg=aug_cfg,
                      seed=seed, device=dev, quiet=quiet)
        kwargs = dict(method=method, real=real, ipc=ipc, config=config, seed=seed, net_cfg=net_cfg,
                      aug_cfg=aug_cfg)
        with tempfile.TemporaryDirectory() as tmp:
            given, taken = Path(tmp) / "in.pt", Path(tmp) / "out.json"
            threads = torch.get_num_threads()
            torch.save({"device": str(dev), "kwargs": kwargs, "threads": threads}, given)
            env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(threads)}
            script = f"import sys; from {__name__} import _main; _main(sys.argv[1], sys.argv[2])"
            done = subprocess.run([sys.executable, "-c", script, str(given), str(taken)],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"the {method} cost run failed:\n{done.stderr[-3000:]}")
            return json.loads(taken.read_text())

    return cached("effects_cost", parts, compute, code=(__name__,))


def _main(given: str, taken: str) -> None:
    """The fresh process of :func:`cost_cell`: read the run's arguments, write its measurements."""
    payload = torch.load(given, weights_only=False)
    Path(taken).write_text(json.dumps(_measure(payload)))


__all__ = ["COSTED", "TRACED", "batch_sizes", "cost_cell", "distil_cell", "equal_batches", "eval_config",
           "gradient_evaluations", "matched_mtt", "record_every", "soft_start_cell", "train_experts"]
