"""Differentiable Siamese augmentation (DSA; Zhao & Bilen, ICML 2021).

DSA augments the real batch ``T`` and the synthetic batch ``S`` with *the same*
random transform ``A_omega`` before they are compared, so the matching loss
reads ``D(grad L(A_omega(S)), grad L(A_omega(T)))`` (gradient matching, the
form quoted as Eq. 5 by Dong et al., "Privacy for Free", ICML 2022) or compares mean
embeddings of ``A(x, omega)`` and ``A(s, omega)`` (DM, Eq. 6 there). Every
transform is built from differentiable tensor ops, so the loss's gradient
reaches the synthetic pixels through the augmentation.

Here the randomness ``omega`` is an explicit object, :class:`AugParams`, drawn by
:meth:`DSA.sample_params` and consumed by :meth:`DSA.apply`. Sampling once and
applying twice is the Siamese use; the reference code gets the same effect by
re-seeding a global generator.

The ops and how each magnitude of :class:`~ddrepro.config.AugConfig` enters
(the DSA paper's settings; one op is drawn per call, "color" runs the three
colour jitters in a row, as in the reference implementation):

* ``color``: brightness ``x + b``, ``b ~ U(-0.5, 0.5) * brightness``; then
  saturation ``m_c + (x - m_c) * s`` with ``m_c`` the per-pixel mean over
  channels and ``s ~ U(0, 1) * saturation`` (identity on 1-channel images,
  where ``m_c`` is the pixel itself); then contrast ``m + (x - m) * k`` with
  ``m`` the image's mean over all pixels and channels and
  ``k ~ U(0, 1) + contrast`` (so ``U(0.5, 1.5)`` with the default 0.5).
* ``crop``: translation by whole pixels, ``t ~ uniform integer in [-p, p]``
  per axis with ``p = round(crop * size)``; pixels shifted in from outside are
  zero (the reference's zero padding).
* ``cutout``: a rectangle of ``round(cutout * H) x round(cutout * W)`` pixels
  set to zero; its centre is uniform over the image, so it may run off the
  edge (only the overlap is erased).
* ``flip``: left-right mirror with probability 1/2 (dropped for digits).
* ``scale``: independent axis factors ``U(1 / scale, scale)`` applied to the
  sampling grid (bilinear, zero outside).
* ``rotate``: angle ``U(-rotate, rotate)`` degrees about the centre
  (bilinear, zero outside; a true rotation in pixel space also for H != W).

Normalised images are assumed (the papers apply DSA after mean/std
normalisation), so "zero" is the data set's mean colour, as in the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .config import AugConfig

ALL_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")

# Columns of the single uniform draw made per sample_params call (one kernel
# instead of eleven); fixed, so a seed means the same params forever.
_U_COLUMNS = ("brightness", "saturation", "contrast", "crop_y", "crop_x",
              "cutout_y", "cutout_x", "flip", "scale_y", "scale_x", "rotate")


@dataclass(eq=False)
class AugParams:
    """The randomness ``omega`` of DSA: one row per sample, or one row shared.

    Every row carries the magnitudes of *all* ops (cheap), so rows drawn with
    different ops can be concatenated and regrouped freely. ``ops`` indexes
    into the owning :attr:`DSA.ops`. The crop and cutout positions are stored
    as uniforms in [0, 1) because their pixel values depend on the image size,
    which is only known in :meth:`DSA.apply`.

    ``op_set`` is an optional host-side hint: the op indices that *may* occur
    in ``ops``. When it names one op, ``apply`` needs no device-to-host sync.
    """

    ops: torch.Tensor          # (n,) int64, index into DSA.ops
    brightness: torch.Tensor   # (n,) additive offset
    saturation: torch.Tensor   # (n,) factor on the deviation from the channel mean
    contrast: torch.Tensor     # (n,) factor on the deviation from the image mean
    crop: torch.Tensor         # (n, 2) uniforms in [0, 1) -> (dy, dx) pixel shifts
    cutout: torch.Tensor       # (n, 2) uniforms in [0, 1) -> (cy, cx) centre
    flip: torch.Tensor         # (n,) bool, mirror left-right
    scale: torch.Tensor        # (n, 2) factors (sy, sx)
    rotate: torch.Tensor       # (n,) angle in radians
    op_set: tuple[int, ...] | None = None

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "op_set"}

    def __len__(self) -> int:
        return int(self.ops.shape[0])

    def index(self, idx: torch.Tensor) -> "AugParams":
        """Rows ``idx`` (int64 indices or a bool mask), e.g. one row per class -> one per image."""
        ok_dtypes = (torch.int64, torch.int32, torch.bool)
        if not isinstance(idx, torch.Tensor) or idx.dim() != 1 or idx.dtype not in ok_dtypes:
            what = (f"{idx.dtype} of shape {tuple(idx.shape)}" if isinstance(idx, torch.Tensor)
                    else type(idx).__name__)
            raise ValueError(f"AugParams.index needs a 1-D int64 or bool tensor, got {what}; "
                             "pass e.g. torch.arange(C).repeat_interleave(n).")
        idx = idx.to(self.ops.device)
        return AugParams(**{k: v[idx] for k, v in self._tensors().items()}, op_set=self.op_set)

    @staticmethod
    def cat(parts: list["AugParams"]) -> "AugParams":
        """Rows of ``parts`` stacked in order (same DSA, same device)."""
        if len(parts) == 0:
            raise ValueError("AugParams.cat got an empty list; pass at least one AugParams.")
        names = parts[0]._tensors().keys()
        joined = {k: torch.cat([getattr(p, k) for p in parts]) for k in names}
        hints = [p.op_set for p in parts]
        op_set = None if any(h is None for h in hints) else tuple(sorted(set().union(*hints)))
        return AugParams(**joined, op_set=op_set)

    def to(self, device: torch.device | str) -> "AugParams":
        """The same rows on ``device`` (a no-op when already there)."""
        return AugParams(**{k: v.to(device) for k, v in self._tensors().items()}, op_set=self.op_set)


class DSA:
    """Differentiable Siamese augmentation with the magnitudes of ``cfg``.

    ``flip=False`` removes the mirror op (digits change meaning when mirrored).
    Randomness comes only from the generator passed in: draws run on the
    generator's device (a CPU generator is the deterministic, recommended
    choice) and the params are then moved to ``device``.
    """

    def __init__(self, cfg: AugConfig = AugConfig(), flip: bool = True):
        names = tuple(cfg.strategy.split("_")) if cfg.strategy else ()
        unknown = [n for n in names if n not in ALL_OPS]
        if unknown:
            raise ValueError(f"AugConfig.strategy {cfg.strategy!r} has unknown op(s) {unknown}; "
                             f"use '_'-joined names from {ALL_OPS}.")
        if len(set(names)) != len(names):
            raise ValueError(f"AugConfig.strategy {cfg.strategy!r} repeats an op; list each op once.")
        ops = tuple(n for n in names if flip or n != "flip")
        if not ops:
            raise ValueError(f"AugConfig.strategy {cfg.strategy!r} leaves no op with flip={flip}; "
                             "add a non-flip op or turn augmentation off in the caller.")
        self.cfg = cfg
        self.flip = flip
        self.ops: tuple[str, ...] = ops
        self._fns = tuple(_OP_FNS[n] for n in ops)

    def __repr__(self) -> str:
        return f"DSA(ops={self.ops}, cfg={self.cfg})"

    # -- sampling ---------------------------------------------------------
    def sample_params(self, n: int, generator: torch.Generator, *, device=None,
                      per_sample_op: bool = False) -> AugParams:
        """Draw ``n`` rows of magnitudes; one op for all rows unless ``per_sample_op``.

        Each call consumes a fixed amount of randomness (one op draw, one
        ``(n, 11)`` uniform draw), so equal seeds give equal params.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"sample_params n = {n!r} is invalid; pass an int >= 0 (rows to draw).")
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"sample_params needs a torch.Generator, got {type(generator).__name__}; "
                             "use ddrepro.runtime.make_generator(seed).")
        gen_device = generator.device
        device = gen_device if device is None else torch.device(device)
        num_ops = len(self.ops)
        if per_sample_op:
            ops = torch.randint(num_ops, (n,), generator=generator, device=gen_device)
            op_set = tuple(range(num_ops))
        else:
            one = torch.randint(num_ops, (1,), generator=generator, device=gen_device)
            ops = one.expand(n).clone()
            # Read the op on the host once, here, so apply() never has to sync.
            op_set = (int(one.item()),)
        u = torch.rand(n, len(_U_COLUMNS), generator=generator, device=gen_device)
        # Two host-to-device copies, then the magnitudes are computed in place.
        return self._magnitudes(ops.to(device), u.to(device), op_set)

    def _magnitudes(self, ops: torch.Tensor, u: torch.Tensor, op_set: tuple[int, ...]) -> AugParams:
        """Map the uniform draw ``u`` (n, 11) to each op's magnitude (see module docstring)."""
        cfg = self.cfg
        col = {name: u[:, i] for i, name in enumerate(_U_COLUMNS)}
        low = 1.0 / cfg.scale
        scale = torch.stack([col["scale_y"], col["scale_x"]], 1) * (cfg.scale - low) + low
        return AugParams(
            ops=ops,
            brightness=(col["brightness"] - 0.5) * cfg.brightness,
            saturation=col["saturation"] * cfg.saturation,
            contrast=col["contrast"] + cfg.contrast,
            crop=torch.stack([col["crop_y"], col["crop_x"]], 1),
            cutout=torch.stack([col["cutout_y"], col["cutout_x"]], 1),
            flip=col["flip"] < 0.5,
            scale=scale,
            rotate=(col["rotate"] * 2.0 - 1.0) * math.radians(cfg.rotate),
            op_set=op_set,
        )

    # -- applying ---------------------------------------------------------
    def apply(self, x: torch.Tensor, params: AugParams) -> torch.Tensor:
        """Transform ``x`` (N, C, H, W) with ``params``.

        ``len(params) == 1``: the same transform for every image (Siamese use).
        ``len(params) == N``: row i transforms image i; rows are grouped by op,
        so the result equals transforming each image on its own.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DSA.apply needs an (N, C, H, W) tensor, got {shape}; add batch/channel dims.")
        if not x.is_floating_point():
            raise ValueError(f"DSA.apply needs a floating-point tensor, got {x.dtype}; convert with x.float().")
        if not isinstance(params, AugParams):
            raise ValueError(f"DSA.apply needs AugParams, got {type(params).__name__}; use DSA.sample_params.")
        if len(params) not in (1, x.shape[0]):
            raise ValueError(f"DSA.apply got {len(params)} param rows for {x.shape[0]} images; "
                             "pass 1 row (shared) or one row per image.")
        params = params.to(x.device)
        if x.shape[0] == 0:
            return x.clone()
        if params.op_set is not None and len(params.op_set) == 1:
            self._check_op_indices(params.op_set)
            return self._fns[params.op_set[0]](x, params, self.cfg)
        return self._apply_grouped(x, params)

    def _check_op_indices(self, op_ids: list[int] | tuple[int, ...]) -> None:
        bad = [k for k in op_ids if not 0 <= k < len(self.ops)]
        if bad:
            raise ValueError(f"AugParams.ops holds {bad}, not indices into {self.ops}; "
                             "sample params with this DSA.")

    def _apply_grouped(self, x: torch.Tensor, params: AugParams) -> torch.Tensor:
        """Run each op once on its own rows, then put the rows back in their order.

        One device-to-host sync (the ops present and their counts); a stable
        sort by op lays the groups out contiguously.
        """
        op_ids, counts = torch.unique(params.ops, return_counts=True)
        op_ids, counts = op_ids.tolist(), counts.tolist()
        self._check_op_indices(op_ids)
        if len(op_ids) == 1:
            return self._fns[op_ids[0]](x, params, self.cfg)
        order = torch.sort(params.ops, stable=True).indices
        outs = []
        for k, rows in zip(op_ids, torch.split(order, counts)):
            outs.append(self._fns[k](x.index_select(0, rows), params.index(rows), self.cfg))
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return torch.cat(outs).index_select(0, inverse)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, *, shared: bool = False) -> torch.Tensor:
        """Sample and apply: one op per call; one shared row or one row per image."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DSA needs an (N, C, H, W) tensor, got {shape}; add batch/channel dims.")
        n = 1 if shared else x.shape[0]
        return self.apply(x, self.sample_params(n, generator, device=x.device))


# -- the ops: (x (N,C,H,W), params with 1 or N rows, cfg) -> (N,C,H,W) -------

def _col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-row scalar as (rows, 1, 1, 1) in x's dtype, broadcasting over the batch."""
    return v.to(x.dtype).view(-1, 1, 1, 1)


def _color(x: torch.Tensor, p: AugParams, cfg: AugConfig) -> torch.Tensor:
    """Brightness, saturation, contrast in sequence (DSA's "color" op).

    Saturation keeps each pixel's channel mean and contrast keeps the image
    mean, so the image mean moves by exactly the brightness offset.
    """
    x = x + _col(p.brightness, x)
    if x.shape[1] > 1:  # one channel: the channel mean is the pixel, saturation is the identity
        pixel_mean = x.mean(dim=1, keepdim=True)
        x = pixel_mean + (x - pixel_mean) * _col(p.saturation, x)
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return image_mean + (x - image_mean) * _col(p.contrast, x)


def _pixels(fraction: float, size: int) -> int:
    """A fraction of an image side in whole pixels, halves rounded up (0.125 * 28 -> 4)."""
    return int(fraction * size + 0.5)


def _int_uniform(u: torch.Tensor, count: int) -> torch.Tensor:
    """Uniforms in [0, 1) -> integers uniform on {0, ..., count - 1}."""
    return (u * count).floor().long().clamp(max=count - 1)


def _crop(x: torch.Tensor, p: AugParams, cfg: AugConfig) -> torch.Tensor:
    """Translate by whole pixels, zero fill: out[y, x] = in[y + dy, x + dx], |dy| <= pad_h.

    Two gathers (rows, then columns) with per-row source indices; out-of-range
    sources are clamped for the gather and zeroed by the mask.
    """
    n, c, h, w = x.shape
    rows = p.crop.shape[0]
    pad_h, pad_w = _pixels(cfg.crop, h), _pixels(cfg.crop, w)
    dy = _int_uniform(p.crop[:, 0], 2 * pad_h + 1) - pad_h
    dx = _int_uniform(p.crop[:, 1], 2 * pad_w + 1) - pad_w
    src_y = torch.arange(h, device=x.device) + dy[:, None]      # (rows, h)
    src_x = torch.arange(w, device=x.device) + dx[:, None]      # (rows, w)
    idx_y = src_y.clamp(0, h - 1).view(rows, 1, h, 1).expand(n, c, h, w)
    idx_x = src_x.clamp(0, w - 1).view(rows, 1, 1, w).expand(n, c, h, w)
    moved = x.gather(2, idx_y).gather(3, idx_x)
    inside_y = ((src_y >= 0) & (src_y < h)).view(rows, 1, h, 1)
    inside_x = ((src_x >= 0) & (src_x < w)).view(rows, 1, 1, w)
    inside = inside_y & inside_x
    return moved * inside.to(x.dtype)


def _cutout(x: torch.Tensor, p: AugParams, cfg: AugConfig) -> torch.Tensor:
    """Zero a cut_h x cut_w rectangle centred at a uniform position (may overhang the edge)."""
    h, w = x.shape[2], x.shape[3]
    rows = p.cutout.shape[0]
    cut_h, cut_w = _pixels(cfg.cutout, h), _pixels(cfg.cutout, w)
    # Even sides get one extra centre position so the overhang is symmetric.
    top = _int_uniform(p.cutout[:, 0], h + 1 - cut_h % 2) - cut_h // 2
    left = _int_uniform(p.cutout[:, 1], w + 1 - cut_w % 2) - cut_w // 2
    ys = torch.arange(h, device=x.device) - top[:, None]         # (rows, h)
    xs = torch.arange(w, device=x.device) - left[:, None]        # (rows, w)
    in_y = ((ys >= 0) & (ys < cut_h)).view(rows, 1, h, 1)
    in_x = ((xs >= 0) & (xs < cut_w)).view(rows, 1, 1, w)
    return x * (~(in_y & in_x)).to(x.dtype)


def _flip(x: torch.Tensor, p: AugParams, cfg: AugConfig) -> torch.Tensor:
    """Mirror left-right the rows whose flip flag is set."""
    return torch.where(p.flip.view(-1, 1, 1, 1), x.flip(3), x)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample x at theta @ [u, v, 1] (bilinear, zeros outside, corners at pixel centres)."""
    theta = theta.to(x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _scale(x: torch.Tensor, p: AugParams, cfg: AugConfig) -> torch.Tensor:
    """Stretch the sampling grid by (sx, sy): factors > 1 zoom out, < 1 zoom in."""
    sy, sx = p.scale[:, 0], p.scale[:, 1]
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    return _affine(x, theta)


def _rotate(x: torch.Tensor, p: AugParams, cfg: AugConfig) -> torch.Tensor:
    """Rotate about the image centre by the sampled angle (positive: clockwise as displayed).

    affine_grid normalises each axis separately, so the pixel-space rotation R
    becomes D^-1 R D with D = diag((W-1)/2, (H-1)/2); for square images D
    cancels and theta is the plain [[cos, sin], [-sin, cos]].
    """
    h, w = x.shape[2], x.shape[3]
    half_w, half_h = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0
    cos, sin = torch.cos(p.rotate), torch.sin(p.rotate)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, sin * (half_h / half_w), zero], 1),
                         torch.stack([-sin * (half_w / half_h), cos, zero], 1)], 1)
    return _affine(x, theta)


_OP_FNS = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip,
           "scale": _scale, "rotate": _rotate}

def siamese_augment(aug: DSA, generator: torch.Generator, real_by_class: torch.Tensor,
                    syn_by_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Siamese DSA by class: one draw per class (its own op and magnitudes) applied to that
    class's real and synthetic images, as DM and DC/DSA use it.

    ``(C, n, ...)``, ``(C, m, ...)`` in, the same shapes out. The reference code
    draws a fresh op and seed per class and re-uses it for both batches; here
    the ``C`` rows are drawn once and expanded with ``AugParams.index``, so the
    whole step is two batched ``apply`` calls. The real side is augmented
    without a graph unless the real images require grad.
    """
    num_classes, n = real_by_class.shape[:2]
    ipc = syn_by_class.shape[1]
    device = syn_by_class.device
    params = aug.sample_params(num_classes, generator, device=device, per_sample_op=True)
    classes = torch.arange(num_classes, device=device)
    with torch.set_grad_enabled(torch.is_grad_enabled() and real_by_class.requires_grad):
        real_aug = aug.apply(real_by_class.flatten(0, 1), params.index(classes.repeat_interleave(n)))
    syn_aug = aug.apply(syn_by_class.flatten(0, 1), params.index(classes.repeat_interleave(ipc)))
    return real_aug.view_as(real_by_class), syn_aug.view_as(syn_by_class)


__all__ = ["AugParams", "DSA", "ALL_OPS", "siamese_augment"]
