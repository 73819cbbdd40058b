"""Every params key a DVC stage names exists in params.yaml: DVC refuses to commit a stage whose key is missing.

A key the schema fills with a default (``eval.unreached_infoset_replies``)
is absent from the file, so naming it in ``dvc.yaml`` let a stage run its
whole command and then fail at ``dvc commit``; this test fails first.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
_TEMPLATE = re.compile(r"\$\{(item(?:\.\w+)?|key)\}")


def _bindings(stage: dict) -> list[dict]:
    """One binding of ``item``/``key`` per expanded stage (foreach list or dict, matrix), or none."""
    if "foreach" in stage:
        items = stage["foreach"]
        pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
        return [{"key": str(key), "item": item} for key, item in pairs]
    if "matrix" in stage:
        names, values = zip(*stage["matrix"].items(), strict=True)
        return [{"key": "-".join(map(str, combo)), "item": dict(zip(names, combo, strict=True))}
                for combo in itertools.product(*values)]
    return [{}]


def _expand(text: str, binding: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "key":
            return binding["key"]
        item = binding["item"]
        return str(item[name.split(".", 1)[1]] if "." in name else item)
    return _TEMPLATE.sub(value, text)


def _named_keys() -> list[tuple[str, str]]:
    named = []
    for name, stage in STAGES.items():
        body = stage.get("do", stage)
        for binding in _bindings(stage):
            for entry in body.get("params", []):
                keys = [entry] if isinstance(entry, str) else [k for file in entry.values() for k in file]
                named += [(name, _expand(key, binding)) for key in keys]
    return named


def _resolves(key: str) -> bool:
    node = PARAMS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_the_pipeline_names_params_keys():
    assert len(_named_keys()) > 50 and any(key == "eval.seed" for _, key in _named_keys())


@pytest.mark.parametrize("stage, key", sorted(set(_named_keys())))
def test_every_params_key_of_a_stage_is_in_params_yaml(stage, key):
    assert _resolves(key), f"dvc.yaml stage {stage} names params key {key!r}, which params.yaml does not have"
