"""Model card schema: every bad card value is one clear line (exit 2) naming the file and the
field, refused before a module is built; good cards still load."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from realtime_me import weights as weights_mod
from realtime_me.cli import main
from realtime_me.errors import UserError
from realtime_me.preprocess import PREPROCESS_VERSION
from realtime_me.weights import load_model, read_card

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "medn"


def _copy_with(tmp_path: Path, edit) -> Path:
    """The shipped MEDN folder copied into tmp_path, its card changed by ``edit(card)``."""
    out = tmp_path / "w"
    shutil.copytree(SHIPPED, out)
    card = json.loads((out / "model.json").read_text())
    edit(card)
    (out / "model.json").write_text(json.dumps(card))
    return out


def _set(path: str, value):
    """An edit that sets ``a.b`` (dotted) to ``value``."""
    def edit(card):
        *parents, last = path.split(".")
        node = card
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


def _cli_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0].split("error:", 1)[1]


@pytest.mark.parametrize("field, value, says", [
    ("labels", None, "'labels' must be a non-empty list of distinct non-empty strings, got null"),
    ("labels", "xyz", "'labels' must be a non-empty list"),
    ("labels", [], "'labels' must be a non-empty list"),
    ("labels", ["negative", "negative", "surprise"], "distinct"),
    ("labels", ["negative", "positive"], "'labels' names 2 classes but config.class_names has 3"),
    ("aus", "AU1", "'aus' must be a list of distinct non-empty strings"),
    ("aus", ["AU1", 2], "'aus' must be a list"),
    ("config.dim", -1, "'config.dim' must be in 1..4096, got -1"),
    ("config.dim", 10000000, "'config.dim' must be in 1..4096, got 10000000"),
    ("config.dim", "64", "'config.dim' must be an integer"),
    ("config.dim", 64.0, "'config.dim' must be an integer"),
    ("config.depth", True, "'config.depth' must be an integer"),
    ("config.heads", 5, "'config': dim 64 is not divisible by heads 5"),
    ("config.patch", 100, "'config': patch 100 is larger than apex_size 56"),
    ("config.motion_channels", [8] * 6, "'config': flow_size 28 does not survive 6 2x poolings"),
    ("config.mlp_ratio", "2", "'config.mlp_ratio' must be a number"),
    ("config.dropout", 7, "'config.dropout' must be in 0..1"),
    ("config.flip_tta", "yes", "'config.flip_tta' must be true or false"),
    ("config.motion_channels", [16, 32, 100000], "'config.motion_channels' item 2 must be in 1..4096"),
    ("config.keep_ratios", [], "'config.keep_ratios' must be a non-empty list of numbers"),
    ("config.class_names", "abc", "'config.class_names' must be a non-empty list of non-empty strings"),
    ("config.not_a_field", 1, "'config' has unknown field(s) ['not_a_field']"),
    ("config", [1, 2], "'config' must be an object"),
    ("architecture", "resnet", "unknown model 'resnet'"),
    ("architecture", None, "'architecture' must be a model name"),
    ("inputs", "flow", "'inputs' must be an object"),
    ("inputs.flow.shape", "B,3,28,28", "'inputs.flow.shape' must be a list"),
    ("preprocess_version", "1", "'preprocess_version' must be an integer >= 0"),
    ("preprocess_version", -1, "'preprocess_version' must be an integer >= 0"),
    ("card_version", 99, "'card_version' must be an integer 1..1"),
    ("lables", ["a", "b", "c"], "unknown model card field(s) ['lables']"),
])
def test_bad_card_values_are_one_line_naming_file_and_field(tmp_path, capsys, field, value, says):
    bad = _copy_with(tmp_path, _set(field, value))
    line = _cli_error(capsys, ["export", "--weights", str(bad), "--cache-dir", str(tmp_path / "engines")])
    assert str(bad / "model.json") in line and says in line, line
    assert not (tmp_path / "engines").exists()  # refused before anything was built or exported


def test_missing_required_fields_are_named(tmp_path):
    bad = _copy_with(tmp_path, lambda c: (c.pop("labels"), c.pop("config")))
    with pytest.raises(UserError, match=r"model\.json: model card lacks config, labels"):
        read_card(bad)


def test_a_huge_config_is_refused_without_building_anything(tmp_path, monkeypatch):
    """Each field in range, far too large together: counted from the config, never allocated."""
    from realtime_me.models import registry

    monkeypatch.setattr(registry, "create_model", lambda *a, **k: pytest.fail("the module was built"))
    bad = _copy_with(tmp_path, lambda c: c["config"].update(dim=4096, depth=64, heads=64, feat_dim=4096))
    with pytest.raises(UserError, match=r"config' describes a medn of \d+ M parameters \(at most 50 M\)"):
        load_model(bad)


@pytest.mark.parametrize("arch, config", [
    ("medn", {}),
    ("medn", dict(dim=96, heads=6, depth=3, mlp_ratio=3.0, keep_ratios=[0.5], motion_channels=[8, 16], feat_dim=32,
                  apex_size=64, flow_size=32, patch=4, au_names=["AU1"], class_names=list("abcde"))),
    ("ststnet", {}),
    ("ststnet", dict(channels=[4, 6], flow_size=40, class_names=["a", "b"])),
])
def test_the_size_rule_counts_what_the_module_builds(arch, config):
    """The size guard follows the real architecture (this fails when a model changes and its rule does not)."""
    from realtime_me.models import create_model, make_config

    model = create_model(arch, **config)
    why, n = weights_mod._SIZE_RULES[arch](make_config(arch, **config))
    assert why is None and n == sum(p.numel() for p in model.parameters())


def test_too_many_apex_tokens_are_refused(tmp_path):
    bad = _copy_with(tmp_path, lambda c: c["config"].update(apex_size=512, patch=2))
    with pytest.raises(UserError, match="65536 tokens"):
        read_card(bad)


def test_run_with_a_bad_card_exits_2_with_one_line(tmp_path, capsys):
    bad = _copy_with(tmp_path, _set("config.dim", 10000000))
    line = _cli_error(capsys, ["--demo", "--as-fast-as-possible", "--quiet", "--weights", str(bad)])
    assert "'config.dim' must be in 1..4096" in line


@pytest.mark.parametrize("field, value, says", [
    ("preprocess_version", PREPROCESS_VERSION - 1, f"'preprocess_version' is {PREPROCESS_VERSION - 1}, but this "
     f"code's preprocessing is version {PREPROCESS_VERSION}: the weights were trained on inputs it no longer makes"),
    ("preprocess.flow_box", [0, 0, 224], f"'preprocess' differs from this code's version-{PREPROCESS_VERSION} "
     "preprocessing: flow_box [0, 0, 224] (code: [6.0, 20.0, 216.0])"),
])
def test_a_card_for_other_preprocessing_is_refused_with_one_line(tmp_path, capsys, field, value, says):
    bad = _copy_with(tmp_path, _set(field, value))
    line = _cli_error(capsys, ["--demo", "--as-fast-as-possible", "--quiet", "--weights", str(bad),
                               "--cache-dir", str(tmp_path / "engines")])
    assert str(bad / "model.json") in line and says in line, line
    assert not (tmp_path / "engines").exists()


@pytest.mark.parametrize("arch", ["medn", "ststnet", "fdp", "pointcloud"])
def test_shipped_cards_give_the_spec_their_weights_build(arch):
    """Each shipped card builds its ModelSpec (tensors, preprocessing) and the module from its
    config takes and gives exactly those tensors."""
    from realtime_me.classify import preprocessing
    from realtime_me.engines import load_spec

    spec, model = load_spec(SHIPPED.parent / arch)
    card = read_card(SHIPPED.parent / arch)
    assert spec.input_names == model.input_names and spec.output_names == model.output_names
    assert (card.preprocess_version, card.preprocess) == preprocessing(spec.input_names)


@pytest.mark.parametrize("arch", ["medn", "ststnet"])
def test_shipped_and_minimal_cards_pass(tmp_path, arch):
    model, card = load_model(SHIPPED.parent / arch)
    assert card.architecture == arch and len(card.labels) == len(model.config.class_names)
    # A card that relies on the config defaults (config {}) is still valid.
    import torch

    from realtime_me.models import create_model
    from realtime_me.weights import ModelCard, save_model

    m = create_model(arch)
    out = save_model(m, ModelCard.for_model(m), tmp_path / arch)
    card = json.loads((out / "model.json").read_text())
    card["config"] = {}
    (out / "model.json").write_text(json.dumps(card))
    m2, _ = load_model(out)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
