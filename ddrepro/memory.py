"""Peak memory of a block of code: CUDA's allocator on a GPU, the resident set on a Linux CPU.

Used where the book compares methods' memory (``book/05_effect_alignment/ead.md``'s cost cells)
and by ``benchmarks/bench_ead_mtt_dm.py``. A resident set is a property of the whole process,
so a fair CPU comparison measures each method in a fresh process, after a warm-up that loads
libraries and kernels, with large blocks ``mmap``'d (``MALLOC_MMAP_THRESHOLD_``) so that freed
memory leaves the set.
"""

from __future__ import annotations

import resource

import torch


def rss_mib() -> float:
    """The current resident set size (Linux ``/proc/self/statm``), MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """The peak resident set since the last :func:`reset_peak_rss` (Linux ``VmHWM``), MiB."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> None:
    """Restart the peak-RSS count from the current resident set (``clear_refs`` 5, Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def lifetime_peak_rss_mib() -> float:
    """The process's peak resident set over its life (``ru_maxrss``, KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``, then ``peak.mib``: the block's peak memory above
    what was in use when it began. On CUDA ``torch.cuda.max_memory_allocated`` minus the memory
    allocated before (the caching allocator's view: tensors, not the driver's reserve); on the
    CPU the peak resident set (reset on entry) minus the resident set before. ``peak.rss_mib``
    is the resident-set figure on either device; ``peak.how`` says which ``mib`` is."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self.mib = self.rss_mib = float("nan")
        self.how = ("CUDA max_memory_allocated minus allocated before" if self.device.type == "cuda"
                    else "peak resident set minus the resident set before")

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._allocated = torch.cuda.memory_allocated(self.device)
        reset_peak_rss()
        self._rss = rss_mib()
        return self

    def __exit__(self, *exc) -> None:
        self.rss_mib = peak_rss_mib() - self._rss
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self._allocated) / 2**20
        else:
            self.mib = self.rss_mib


__all__ = ["PeakMemory", "lifetime_peak_rss_mib", "peak_rss_mib", "reset_peak_rss", "rss_mib"]
