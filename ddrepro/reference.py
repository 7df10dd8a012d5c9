"""The plain loops the engine is checked against: one ``nn.Module``, ``torch.optim.SGD``, one model at a time.

:func:`ddrepro.train.train_models` trains K stacked models with its own SGD
arithmetic, batched augmentation and per-model data; :func:`train_model_loop`
trains model k of it the way the usual research code would, and the tests
require the same numbers (bit for bit with the ``"unrolled"`` engine).
:func:`evaluate_loop` does the same for a whole evaluation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .config import AugConfig, EvalConfig, NetConfig
from .evaluate import EvalResult, _protocol
from .nets import build_net
from .runtime import is_quiet, progress, resolve_device
from .synthetic import SyntheticSet
from .train import (
    Augmentation, batch_loss, check_training_inputs, data_generator, decay_epochs, derive_seed,
    lr_at, model_weights,
)


def _reference_sgd(net: nn.Module, lr: float, eval_cfg: EvalConfig) -> torch.optim.SGD:
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=eval_cfg.momentum,
                           weight_decay=eval_cfg.weight_decay)


def train_model_loop(images: Tensor, labels: Tensor, k: int, *, net_cfg: NetConfig,
                     eval_cfg: EvalConfig, num_classes: int, seed: int = 0,
                     aug: Augmentation | None = None,
                     sample_weights: Tensor | None = None, device: str | torch.device = "auto",
                     quiet: bool | None = None) -> nn.Module:
    """Model ``k`` of :func:`train_models`, trained alone with ``torch.optim.SGD`` (the reference)."""
    check_training_inputs(images, labels, num_classes)
    dev = resolve_device(device)
    n = images.shape[0]
    net = build_net(net_cfg, images.shape[1], num_classes, images.shape[2],
                    seed=derive_seed(seed, k, "init")).to(dev).train()
    images, labels = images.to(dev), labels.to(dev)
    weights = model_weights(sample_weights, [torch.arange(n)], n, dev)
    generator = data_generator(seed, k)
    opt = _reference_sgd(net, lr_at(0, eval_cfg), eval_cfg)
    for epoch in progress(range(eval_cfg.epochs), desc=f"model {k}", quiet=is_quiet(quiet)):
        if epoch in decay_epochs(eval_cfg):
            # As the reference: a new optimiser at the decayed rate, so no momentum carries over.
            opt = _reference_sgd(net, lr_at(epoch, eval_cfg), eval_cfg)
        order = torch.randperm(n, generator=generator).to(dev)
        for idx in order.split(eval_cfg.batch_size):
            x = images[idx]
            if aug is not None:
                x = aug.apply(x, aug.sample_params(idx.numel(), generator))
            loss = batch_loss(net(x), labels[idx], None if weights is None else weights[0, idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()



def evaluate_loop(syn: SyntheticSet, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                  aug_cfg: AugConfig = AugConfig(), seed: int = 0, flip: bool,
                  device: str | torch.device = "auto", quiet: bool | None = None) -> EvalResult:
    """:func:`ddrepro.evaluate.evaluate` one model at a time with :func:`train_model_loop` (not cached)."""
    dev = resolve_device(device)
    aug = _protocol(test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, flip=flip).aug()
    test_images, test_labels = test.images.to(dev), test.labels.to(dev)
    accs = []
    for k in range(eval_cfg.n_models):
        net = train_model_loop(syn.images, syn.labels, k, net_cfg=net_cfg, eval_cfg=eval_cfg,
                               num_classes=test.num_classes, seed=seed, aug=aug, device=dev,
                               quiet=quiet)
        with torch.no_grad():
            preds = torch.cat([net(x).argmax(1) for x in test_images.split(eval_cfg.test_batch_size)])
        accs.append((preds == test_labels).float().mean())
    return EvalResult.from_accs(torch.stack(accs), 0.0, {"kind": "loop", "seed": seed})


__all__ = ["evaluate_loop", "train_model_loop"]
