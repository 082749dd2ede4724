"""One-line labels the training commands print next to their tables: split sizes and the fitted inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sizes_label(per_seed: Sequence[dict[str, Any]]) -> str:
    """``" (n train 720 / val 80 / eval 200)"`` from the first seed's ``sizes`` (same for every seed but the
    carve of validation, whose size does not change); empty without sizes."""
    sizes = (per_seed[0].get("sizes") or {}) if per_seed else {}
    if not sizes:
        return ""
    parts = [f"{name} {sizes[name]:,}" for name in ("train", "val", "eval") if sizes.get(name)]
    return f" (n {' / '.join(parts)})"


def input_fit_label(per_seed: Sequence[dict[str, Any]]) -> str:
    """``"tau auto -> 0.43 (edge density 5.0% on the training states), inputs normalized: standardize"``, or empty.

    Each seed fits on its own sample: a tau that differs across seeds is shown as a range."""
    fits = [m["input_fit"] for m in per_seed if m.get("input_fit")]
    if not fits:
        return ""
    parts = []
    if "tau" in fits[0]:
        taus = sorted({f["tau"] for f in fits})
        shown = f"{taus[0]:g}" if len(taus) == 1 else f"{taus[0]:g}-{taus[-1]:g}"
        density = sum(f["edge_density"] for f in fits) / len(fits)
        how = "auto -> " if fits[0].get("tau_auto") else ""
        parts.append(f"tau {how}{shown} (edge density {100 * density:.1f}% on the training states)")
    if fits[0].get("normalize", "none") != "none":
        parts.append(f"inputs normalized: {fits[0]['normalize']}")
    return ", ".join(parts)
