"""MEDN / STSTNet: shapes, top-k keep ratios, losses, weights round-trip and error handling."""
from __future__ import annotations

import json

import pytest
import torch

from realtime_me.errors import UserError
from realtime_me.models import MEDN, MEDNConfig, create_model, list_models, orthogonality_loss
from realtime_me.models.medn import select_tokens
from realtime_me.training import masked_au_loss
from realtime_me.weights import ModelCard, load_model, save_model


def test_registry_lists_both_models_and_rejects_unknown():
    assert {"medn", "ststnet"} <= set(list_models())
    with pytest.raises(UserError, match="unknown model"):
        create_model("nope")
    with pytest.raises(UserError, match="no config field"):
        create_model("medn", not_a_field=1)


def test_medn_forward_shapes_and_overrides():
    m = create_model("medn", class_names=("a", "b", "c", "d"), au_names=("AU1", "AU4")).eval()
    flow, apex = m.example_inputs(3)
    logits, au = m(flow, apex)
    assert logits.shape == (3, 4) and au.shape == (3, 2)
    assert m.input_names == ("flow", "apex") and m.output_names == ("logits", "au_logits")


def test_ststnet_forward_shape():
    m = create_model("ststnet").eval()
    (logits,) = m(*m.example_inputs(2))
    assert logits.shape == (2, 3)


def test_topk_keep_counts_follow_ratios():
    cfg = MEDNConfig(apex_size=64, patch=8, keep_ratios=(0.5, 0.25, 0.125))
    assert cfg.num_tokens == 64 and cfg.keep_counts == (32, 16, 8)
    m = MEDN(cfg).eval()
    out = m.forward_features(*m.example_inputs(2))
    assert out.token_scores.shape == (2, 64)
    # the pooled scales are built from exactly k tokens: the projection sees (1 + 3) * dim inputs
    assert m.emotion.proj[1].in_features == cfg.dim * 4


def test_select_tokens_keeps_exactly_the_top_k():
    tokens = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    scores = torch.tensor([[0.1, 0.5, 0.0, 0.3, 0.05, 0.05], [0.9, 0.0, 0.0, 0.0, 0.0, 0.1]])
    kept, w = select_tokens(tokens, scores, 2)
    assert kept.shape == (2, 2, 3)
    assert torch.equal(kept[0], tokens[0, [1, 3]]) and torch.equal(kept[1], tokens[1, [0, 5]])
    assert torch.allclose(w.sum(1), torch.ones(2))
    assert torch.allclose(w[0], torch.tensor([0.625, 0.375]))


def test_cls_attention_scores_are_a_distribution_over_patches():
    m = MEDN(MEDNConfig(depth=1)).eval()
    scores = m.forward_features(*m.example_inputs(2)).token_scores
    assert torch.all(scores >= 0) and torch.all(scores.sum(1) <= 1.0 + 1e-5)


def test_orthogonality_loss():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[0.0, 3.0], [5.0, 0.0]])
    assert orthogonality_loss(a, b).item() == pytest.approx(0.0)
    assert orthogonality_loss(a, a).item() == pytest.approx(1.0)
    assert 0.0 < orthogonality_loss(a, torch.tensor([[1.0, 1.0], [1.0, 1.0]])).item() < 1.0


def test_au_loss_is_masked_for_uncoded_rows():
    logits = torch.tensor([[5.0, -5.0], [-9.0, 9.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])   # row 1 is badly wrong, but uncoded (SMIC)
    mask = torch.tensor([1.0, 0.0])
    loss = masked_au_loss(logits, target, mask)
    assert loss.item() < 0.01
    loss.backward()
    assert torch.all(logits.grad[1] == 0)
    assert masked_au_loss(logits, target, torch.zeros(2)).item() == 0.0


def test_save_load_round_trip_identical(tmp_path):
    torch.manual_seed(1)
    m = create_model("medn").eval()
    save_model(m, ModelCard.for_model(m), tmp_path)
    m2, card = load_model(tmp_path)
    x = m.example_inputs(2)
    for a, b in zip(m(*x), m2(*x)):
        assert torch.equal(a, b)
    assert card.architecture == "medn" and card.config["apex_size"] == m.config.apex_size
    assert m2.config == m.config


def test_corrupt_or_wrong_weights_give_user_error(tmp_path):
    m = create_model("medn").eval()
    save_model(m, ModelCard("medn", {}, ["n", "p", "s"]), tmp_path)
    card = json.loads((tmp_path / "model.json").read_text())

    (tmp_path / "model.json").write_text(json.dumps({**card, "config": {**card["config"], "dim": 32}}))
    with pytest.raises(UserError, match="model.safetensors.*shape"):
        load_model(tmp_path)

    (tmp_path / "model.json").write_text(json.dumps({**card, "architecture": "ststnet", "config": {}}))
    with pytest.raises(UserError, match="do not match architecture 'ststnet'"):
        load_model(tmp_path)

    (tmp_path / "model.json").write_text(json.dumps(card))
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="model.safetensors: not a readable"):
        load_model(tmp_path)

    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(UserError, match="model.json: not valid JSON"):
        load_model(tmp_path)

    with pytest.raises(UserError, match="model card not found"):
        load_model(tmp_path / "missing")


def test_flip_tta_averages_input_and_mirror():
    from realtime_me.models.medn import mirror_flow
    torch.manual_seed(0)
    m = create_model("medn", flip_tta=True).eval()
    flow, apex = m.example_inputs(2)
    plain = create_model("medn", flip_tta=False).eval()
    plain.load_state_dict(m.state_dict())
    want = (plain(flow, apex)[0] + plain(mirror_flow(flow), apex.flip(-1))[0]) / 2
    assert torch.allclose(m(flow, apex)[0], want, atol=1e-5)
    assert torch.allclose(mirror_flow(mirror_flow(flow)), flow)
