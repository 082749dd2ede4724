"""The pooler modules after the split (base / poolers / zoo_poolers): every old import path still gives the same
objects, importing ``glot.pooling.poolers`` registers every head in the old order, and a pooler of every
registered name saved in one process loads in a fresh one through the public API with the same outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

import glot
from test_poolers import SMALL  # the same small settings as the contract tests

#: the registry's order before the split: the paper's poolers first, then the heads beyond the paper
ORDER = ["cls", "eos", "mean", "max", "adapool", "mlp", "glot", "transformer", "pma", "learned-graph"]


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_importing_poolers_alone_registers_every_head_in_the_old_order() -> None:
    code = "import glot.pooling.poolers as p, json; print(json.dumps(list(p.POOLERS)))"
    assert json.loads(_python(code)) == ORDER
    assert list(glot.POOLERS) == ORDER


def test_every_old_import_path_gives_the_same_objects() -> None:
    import glot.pooling.base as base
    import glot.pooling.poolers as poolers
    import glot.pooling.zoo_poolers as zoo_poolers

    assert poolers.POOLERS is base.POOLERS is glot.POOLERS
    assert poolers.Pooler is base.Pooler is glot.Pooler
    assert poolers.register_pooler is base.register_pooler
    assert (poolers.CONFIG_NAME, poolers.WEIGHTS_NAME) == ("pooler_config.json", "model.safetensors")
    assert glot.build_pooler is poolers.build_pooler and glot.load_pooler is poolers.load_pooler
    classes = {
        "cls": "CLSPooler", "eos": "EOSPooler", "mean": "MeanPooler", "max": "MaxPooler", "adapool": "AdaPooler",
        "mlp": "MLPPooler", "glot": "GLOTPooler", "transformer": "TransformerPooler", "pma": "PMAPooler",
        "learned-graph": "LearnedGraphPooler",
    }  # fmt: skip
    for name, cls in classes.items():
        assert getattr(poolers, cls) is poolers.pooler_class(name)
    for name in ("transformer", "pma", "learned-graph"):
        assert poolers.pooler_class(name).__module__ == zoo_poolers.__name__
    assert poolers.POOLERS is glot.POOLERS and poolers.build_pooler is glot.build_pooler


def test_a_saved_pooler_of_every_name_loads_in_a_fresh_process(tmp_path: Path) -> None:
    hidden = torch.randn(3, 6, 12, generator=torch.Generator().manual_seed(0))
    mask = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]
    want = {}
    for name in glot.POOLERS:
        torch.manual_seed(1)
        pooler = glot.build_pooler(name, 12, **SMALL.get(name, {})).eval()
        pooler.save_pretrained(tmp_path / name)
        with torch.no_grad():
            want[name] = pooler(hidden, mask).tolist()
    torch.save({"hidden": hidden, "mask": mask}, tmp_path / "batch.pt")
    code = (  # only the public API: import glot, glot.load_pooler (nothing registered by hand)
        "import json, sys, torch, glot\n"
        f"root = {str(tmp_path)!r}\n"
        "b = torch.load(root + '/batch.pt')\n"
        "out = {}\n"
        f"for name in {ORDER!r}:\n"
        "    p = glot.load_pooler(root + '/' + name).eval()\n"
        "    with torch.no_grad():\n"
        "        out[name] = [type(p).__name__, p(b['hidden'], b['mask']).tolist()]\n"
        "print(json.dumps(out))\n"
    )
    got = json.loads(_python(code))
    assert list(got) == ORDER
    for name in ORDER:
        assert got[name][0] == glot.POOLERS[name].__name__
        torch.testing.assert_close(torch.tensor(got[name][1]), torch.tensor(want[name]))
