"""How an executed chapter is prepared for reading on the site (the runner applies it to every copy).

The parameters cells are plumbing, not story, and are removed; a long code cell
folds behind a "show code" toggle so that the prose reads first. The notebook a
student opens from ``book/`` is untouched: every cell stays open there.
"""

from __future__ import annotations

import json
from pathlib import Path

from .artifacts import atomic_write_bytes

PARAMETER_TAGS = ("parameters", "injected-parameters")
# A code cell longer than this folds behind a "show code" toggle on the site, so the
# story reads first; the notebook a student opens keeps every cell open.
FOLD_LINES = 25
_SHOWN_AS_IS = {"hide-input", "hide-cell", "remove-input", "remove-cell", "show-input"}


def tag_for_reading(path: Path) -> None:
    """Tag an executed copy for the site: the parameters cells ``remove-cell``, long code ``hide-input``.

    The defaults cell and papermill's injected cell are plumbing, not part of the
    chapter's story (the chapter prints the resolved profile, and its scorecard
    records the run's overrides). A code cell of more than :data:`FOLD_LINES`
    lines folds unless its author tagged it otherwise (``show-input`` keeps it open).
    """
    nb = json.loads(Path(path).read_text())
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if set(tags) & set(PARAMETER_TAGS) and "remove-cell" not in tags:
            cell.setdefault("metadata", {})["tags"] = [*tags, "remove-cell"]
        elif cell.get("cell_type") == "code" and not set(tags) & _SHOWN_AS_IS:
            source = cell.get("source", "")
            lines = (source if isinstance(source, str) else "".join(source)).splitlines()
            if len(lines) > FOLD_LINES:
                cell.setdefault("metadata", {})["tags"] = [*tags, "hide-input"]
    atomic_write_bytes(Path(path), json.dumps(nb, indent=1).encode())


__all__ = ["FOLD_LINES", "PARAMETER_TAGS", "tag_for_reading"]
