"""The two poisoning attacks' running time, side by side: DM poisoning vs gradient matching.

Zheng & Li (UAI 2023, Sec. 3.2) argue that DM poisoning "does not need to
pretrain multiple models, and thus our attack runs faster than the gradient
matching attack". This script crafts the poisons of one target with each
attack -- the package's own ``dm_poison`` and ``gm_poison``, uncached -- on
the same data, with the same T steps, R restarts, eps and rate, and reports:

* DM poisoning: crafting time (T x R steps, all restarts in one batch, a fresh
  random network per step) and the restarts' scoring;
* gradient matching: the pretraining of its ``pretrained`` clean networks
  (staggered epochs, ``ddrepro.poisoning.gradient_matching.pretrain_epochs_of``)
  and the crafting (a double backward per step, restarts one after another);
* the ratio of the totals;
* with ``--cell-steps N``, the victim's side of one grid cell on the DM-poisoned set
  (``ddrepro.poisoning.study.poison_cell``'s condensation and evaluation, against DM and
  RDM-DC): seconds per DM step at the profile's IPC and real batch, so that a full cell
  (the profile's ``dm_steps``) and a grid can be estimated without running them.

The data are random 8-bit images of the profile's data set's shape and size
(a step's cost does not depend on pixel values; no download is needed).
Sizes and hyperparameters come from the profile's ``poison`` section
(``ddrepro.profiles``); ``--pretrained`` and ``--pretrain-epochs`` override
gradient matching's (its paper-profile pretraining is hours on a CPU).

    python benchmarks/bench_poison_attacks.py --profile cpu                 # the book's sizes, CPU
    python benchmarks/bench_poison_attacks.py --profile paper --device cuda # CIFAR-10's sizes, 16 networks
    python benchmarks/bench_poison_attacks.py --profile paper --device cuda --pretrain-epochs 4 --cell-steps 500
    python benchmarks/bench_poison_attacks.py --quick                       # tiny: the script runs
    python benchmarks/bench_poison_attacks.py --quick --json DIR  # also write DIR/poison_attacks.bench.json

The record's baseline is gradient matching, so DM poisoning's ratio is its speed-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

SEED = 0


def random_image_data(name: str, per_class: int, split: str, seed: int):
    """Random 8-bit images with the shape, classes and normalisation of data set ``name``."""
    from ddrepro.data import ImageData, info

    meta = info(name)
    gen = torch.Generator().manual_seed(seed)
    n = per_class * meta.num_classes
    pixels = torch.randint(0, 256, (n, *meta.shape), generator=gen).float() / 255
    mean = torch.tensor(meta.mean).view(-1, 1, 1)
    std = torch.tensor(meta.std).view(-1, 1, 1)
    labels = torch.arange(meta.num_classes).repeat_interleave(per_class)
    return ImageData((pixels - mean) / std, labels, name, split, meta.mean, meta.std, meta.classes,
                     flip_ok=meta.flip_ok)


def main() -> None:
    import ddrepro
    from ddrepro.poisoning.gradient_matching import GMPoisonConfig, gm_poison
    from ddrepro.poisoning.poison import DMPoisonConfig, dm_poison, pick_target
    from ddrepro.data import info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | paper (sizes and hyperparameters)")
    parser.add_argument("--pretrained", type=int, help="gradient matching's clean networks (default: the profile's)")
    parser.add_argument("--pretrain-epochs", type=int, help="their training epochs (default: the profile's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cell-steps", type=int, default=0,
                        help="also time the victim of one cell (DM and RDM-DC) with this many DM steps")
    parser.add_argument("--quick", action="store_true", help="smoke profile, 2 networks of 1 epoch")
    parser.add_argument("--json", metavar="DIR", help="write the measurements to DIR/poison_attacks.bench.json")
    args = parser.parse_args()
    if args.quick:
        args.profile, args.pretrained, args.pretrain_epochs, args.cell_steps = "smoke", 2, 1, 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    prof = ddrepro.get_profile(args.profile)
    study = prof.poison
    pretrained = study.pretrained if args.pretrained is None else args.pretrained
    epochs = study.pretrain_epochs if args.pretrain_epochs is None else args.pretrain_epochs
    shared = dict(eps=study.eps[0], rate=study.rate, steps=study.attack_steps, restarts=study.restarts,
                  step_size=study.attack_lr)
    dm_cfg = DMPoisonConfig(**shared)
    gm_cfg = GMPoisonConfig(**shared, pretrained=pretrained, pretrain_epochs=epochs)
    per_class = prof.data.train_per_class or info(study.dataset).num_train // info(study.dataset).num_classes
    real = random_image_data(study.dataset, per_class, "train", SEED)
    test = random_image_data(study.dataset, 10, "test", SEED + 1)
    target = pick_target(test, SEED)
    where = (torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda")
             else f"CPU, {torch.get_num_threads()} threads")
    n_poisons = max(1, round(study.rate * len(real)))
    print(f"torch {torch.__version__}, {where}; profile {args.profile}: {study.dataset}-shaped random data, "
          f"{len(real)} training images, {n_poisons} poisons, T = {study.attack_steps}, "
          f"R = {study.restarts}, {prof.net.name} width {prof.net.width}")
    common = dict(net_cfg=prof.net, aug_cfg=prof.aug, seed=SEED, device=args.device, quiet=True, cache=False)
    # one untimed step of each first: lazy initialisation (kernels, DSA, autograd) is nobody's cost
    warm = dict(steps=1, restarts=1)
    dm_poison(real, test, target, dataclasses.replace(dm_cfg, score_nets=1, **warm), **common)
    gm_poison(real, test, target, dataclasses.replace(gm_cfg, pretrained=1, pretrain_epochs=1, **warm), **common)

    start = time.perf_counter()
    dm = dm_poison(real, test, target, dm_cfg, **common)
    dm_total = time.perf_counter() - start
    start = time.perf_counter()
    gm = gm_poison(real, test, target, gm_cfg, **common)
    gm_total = time.perf_counter() - start

    rows = [("DM poisoning (Alg. 2)", 0.0, dm.seconds, dm_total),
            (f"gradient matching (Alg. 1), {pretrained} networks, <= {epochs} epochs",
             gm.pretrain_seconds, gm.seconds - gm.pretrain_seconds, gm_total)]
    print(f"{'attack':<58} {'pretrain s':>10} {'craft s':>9} {'total s':>9}")
    for name, pre, craft, total in rows:
        print(f"{name:<58} {pre:>10.1f} {craft:>9.1f} {total:>9.1f}")
    print(f"gradient matching / DM poisoning, total: {gm_total / dm_total:.1f}x "
          f"(crafting alone: {(gm.seconds - gm.pretrain_seconds) / dm.seconds:.1f}x)")
    print(f"configs: {dataclasses.asdict(dm_cfg)} | {dataclasses.asdict(gm_cfg)}")
    if args.json:
        from ddrepro.perf import make_record, timing, write_record

        dm_name, gm_name = "DM poisoning (Alg. 2)", "gradient matching (Alg. 1)"
        record = make_record(
            "poison_attacks", title="crafting one target's poisons: DM poisoning and gradient matching",
            size="quick" if args.quick else "full", device=args.device, baseline=gm_name, unit="target",
            timings=[timing("total", dm_name, [dm_total]), timing("total", gm_name, [gm_total]),
                     timing("crafting alone", dm_name, [dm.seconds]),
                     timing("crafting alone", gm_name, [gm.seconds - gm.pretrain_seconds])],
            settings={"profile": args.profile, "images": len(real), "poisons": n_poisons,
                      "gm_pretrained": pretrained, "gm_pretrain_epochs": epochs,
                      "dm": dataclasses.asdict(dm_cfg), "gm": dataclasses.asdict(gm_cfg)})
        print(f"record: {write_record(record, args.json)}")
    if args.cell_steps > 0:
        time_victims(prof, real, test, dm.data, target, dm_cfg, args.cell_steps, args.device)


def time_victims(prof, real, test, poisoned, target, attack_cfg, steps: int, device: str) -> None:
    """The victim's side of a grid cell (condense with DM and RDM-DC, then evaluate), uncached."""
    from ddrepro.poisoning.study import class_rate, defense_config
    from ddrepro.condense import condense
    from ddrepro.config import DMConfig
    from ddrepro.evaluate import evaluate

    study = prof.poison
    eval_cfg = dataclasses.replace(prof.eval, n_models=study.victims)
    eps_p = class_rate(real, attack_cfg.rate, target.adv_label)
    print(f"victim: DM, ipc {study.ipc}, batch_real {study.batch_real}, {steps} of the profile's "
          f"{study.dm_steps} steps; evaluation {eval_cfg.epochs} epochs x {eval_cfg.n_models} network(s)")
    for defense in ("dm", "rdm"):
        method, cfg = defense_config(defense, DMConfig(steps=steps, batch_real=study.batch_real), eps_p,
                                     study.power_iterations)
        start = time.perf_counter()
        syn = condense(method, poisoned, study.ipc, config=cfg, init=study.init, seed=0, net_cfg=prof.net,
                       aug_cfg=prof.aug, device=device, quiet=True, cache=False)
        condensed = time.perf_counter() - start
        start = time.perf_counter()
        evaluate(syn, test, net_cfg=prof.net, eval_cfg=eval_cfg, aug_cfg=prof.aug, seed=0,
                 flip=real.flip_ok, device=device, quiet=True, cache=False)
        evaluated = time.perf_counter() - start
        per_step = condensed / steps
        print(f"{defense:>4}: {1e3 * per_step:.1f} ms a DM step (incl. set-up), evaluation {evaluated:.1f} s; "
              f"a full cell ~{(per_step * study.dm_steps + evaluated) / 60:.1f} min")


if __name__ == "__main__":
    main()
