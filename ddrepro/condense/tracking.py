"""Watching a condensation (records and snapshots) and resuming a killed one.

:class:`History` records, every ``record_every`` steps, what the privacy
chapter's Fig. 7 and Prop. 4.4 look at: the step's matching loss, each
class's barycentre distance in pixels ``||mean(S_c) - mean(T_c)||`` (Dong et
al. 2022, Appendix D.2), and how far the set moved from its initialisation,
``||S - S0|| / ||S0||``; every ``snapshot_every`` steps it keeps the images.
Record 0 is the initial set, before any update.

:class:`Resume` saves a long run's whole state (the learned tensors, the
optimiser's state, the random generator's state and the history so far)
every few minutes, or every ``every`` steps, into the artifact store under
the run's own key. A run that finds such a state continues from it and ends
with exactly the numbers an uninterrupted run gives; the state is deleted
once the finished set is cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..artifacts import ArtifactStore

STATE_KIND = "condense-state"
STATE_FORMAT = 1


@dataclass
class History:
    """Per-step records of a condensation; ``real_means`` ``(C, ch, H, W)``, ``std`` per channel."""

    record_every: int | None
    snapshot_every: int | None
    real_means: torch.Tensor
    std: torch.Tensor
    initial: torch.Tensor
    rows: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.record_every or self.snapshot_every)

    def _append(self, name: str, value: torch.Tensor) -> None:
        # a copy: the live tensor keeps changing (and .cpu() of a CPU tensor is no copy)
        self.rows.setdefault(name, []).append(value.detach().to("cpu", copy=True))

    def barycentre_distances(self, syn: torch.Tensor) -> torch.Tensor:
        """``(C,)`` pixel-space distance between each class's synthetic and real mean image."""
        num_classes = self.real_means.shape[0]
        syn_means = syn.detach().view(num_classes, -1, *syn.shape[1:]).mean(1)
        return ((syn_means - self.real_means) * self.std).flatten(1).norm(dim=1)

    def observe(self, updates: int, syn: torch.Tensor, losses: Sequence[torch.Tensor],
                last: bool) -> None:
        """Called after ``updates`` steps (0: the initial set); records what is due."""
        if self.record_every and (updates % self.record_every == 0 or last):
            self._append("step", torch.tensor(updates))
            loss = torch.stack(list(losses)).float().mean() if losses else torch.tensor(float("nan"))
            self._append("loss", loss)
            self._append("bary_dist", self.barycentre_distances(syn))
            moved = (syn.detach() - self.initial).norm() / self.initial.norm().clamp_min(1e-12)
            self._append("moved", moved)
        if self.snapshot_every and (updates % self.snapshot_every == 0 or last):
            self._append("snapshot_step", torch.tensor(updates))
            self._append("snapshots", syn)

    def state(self) -> dict[str, list[torch.Tensor]]:
        return {name: list(values) for name, values in self.rows.items()}

    def load(self, rows: dict[str, list[torch.Tensor]]) -> None:
        self.rows = {name: list(values) for name, values in rows.items()}

    def result(self) -> dict[str, torch.Tensor]:
        """The records as stacked tensors (``step`` ``(R,)``, ``bary_dist`` ``(R, C)``, ...)."""
        return {name: torch.stack(values) for name, values in self.rows.items()}


@dataclass
class Resume:
    """Periodic saves of a run's state under its artifact key, and the restore at start."""

    store: ArtifactStore
    key: str
    every: int | None = None       # steps between saves; None: by wall time
    seconds: float = 120.0
    _last: float = field(default_factory=time.monotonic)

    def due(self, next_step: int, total: int) -> bool:
        if next_step >= total:
            return False  # the finished result is cached instead
        if self.every is not None:
            return next_step % self.every == 0
        return time.monotonic() - self._last >= self.seconds

    def save(self, next_step: int, tensors: Sequence[torch.Tensor], optimizer: Any,
             generator: torch.Generator, history: History) -> None:
        state = {"format": STATE_FORMAT, "step": next_step,
                 "tensors": [t.detach().cpu() for t in tensors],
                 "optimizer": None if optimizer is None else optimizer.state_dict(),
                 "generator": generator.get_state(), "history": history.state()}
        self.store.save(STATE_KIND, self.key, state)
        self._last = time.monotonic()

    def restore(self, tensors: Sequence[torch.Tensor], optimizer: Any, generator: torch.Generator,
                history: History) -> int:
        """Load a saved state into the live objects; returns the step to continue from (0: none)."""
        state = self.store.load(STATE_KIND, self.key)
        if not state or state.get("format") != STATE_FORMAT or len(state["tensors"]) != len(tensors):
            return 0
        with torch.no_grad():
            for live, saved in zip(tensors, state["tensors"]):
                live.copy_(saved)
        if optimizer is not None and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        history.load(state["history"])
        return int(state["step"])

    def clear(self) -> None:
        self.store.delete(STATE_KIND, self.key)


__all__ = ["History", "Resume", "STATE_KIND"]
