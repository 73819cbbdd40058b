"""What the pipeline trusts: params alone turn on remote code; a Hub base is pinned or says it is not;
resumed checkpoints are unpickled only in weights-only mode."""

from __future__ import annotations

import inspect
import re

from sepo.models.loading import HubReference, resolve_hub_commit, resolve_model_source


def test_a_folders_hub_reference_cannot_switch_on_remote_code(tmp_path):
    HubReference("owner/model", "main", trust_remote_code=True).write(tmp_path)
    assert resolve_model_source(tmp_path, trust_remote_code=False)[2] is False
    assert resolve_model_source(tmp_path, trust_remote_code=True)[2] is True


def test_a_recorded_commit_is_what_gets_downloaded(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    HubReference("owner/model", "main", commit=commit, note="resolved on the Hub").write(tmp_path)
    assert resolve_model_source(tmp_path)[:2] == ("owner/model", commit)


def test_offline_the_revision_is_recorded_as_not_resolved(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit, note = resolve_hub_commit("owner/model", "main")
    assert commit is None and "NOT resolved to a commit" in note and "offline" in note
    full = "0123456789abcdef0123456789abcdef01234567"
    assert resolve_hub_commit("owner/model", full)[0] == full  # a commit needs no lookup


def test_the_trainer_unpickles_checkpoint_state_weights_only():
    """Resume loads optimizer.pt, scheduler.pt, rng_state.pth through transformers' Trainer: all weights_only."""
    from transformers import trainer

    source = inspect.getsource(trainer)
    calls = re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", source)
    assert calls and all("weights_only=True" in call for call in calls), calls
