"""Model weights on disk: ``model.safetensors`` + ``model.json`` (the model card).

Loading never unpickles: tensors come from safetensors, everything else from
JSON, and the card's architecture name + config rebuild the module through the
registry before the tensors are checked (names, shapes) and loaded. Every
failure is a ``UserError`` that names the file and what is wrong.

A card is validated against a schema (``validate_card``) before anything is
built: a card is user input, and ``dim: 10000000`` must be refused before it
allocates gigabytes, ``labels: "xyz"`` before it becomes three labels.

Like timm's pretrained config, the card carries what the engines need without the
module: the tensors' names and shapes (``inputs``), and the preprocessing the weights
were trained on (``preprocess_version`` and its parameters, ``preprocess``). It builds
the ``ModelSpec`` (``read_spec``), so an engine that runs an exported graph never
imports torch, and it refuses weights whose preprocessing this code no longer computes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engines.spec import ModelSpec
from .errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_VERSION = 1


@dataclass
class ModelCard:
    """What a weights folder is: enough to rebuild, feed and trust the model."""

    architecture: str
    config: dict[str, Any]
    labels: list[str]
    aus: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)       # name -> shape, dtype, normalisation; "outputs"
    preprocess_version: int = 0
    preprocess: dict[str, Any] = field(default_factory=dict)   # its parameters (classify.preprocessing)
    training: dict[str, Any] = field(default_factory=dict)     # data, subjects, epochs, seed, ...
    loso: dict[str, Any] = field(default_factory=dict)         # UF1/UAR overall and per dataset
    date: str = ""
    seed: int = 0
    notes: str = ""
    card_version: int = CARD_VERSION

    @classmethod
    def for_model(cls, model: nn.Module, **fields: Any) -> "ModelCard":
        """The card of a freshly built model: its labels and AUs from its config, its tensors and
        the preprocessing this code feeds it, plus ``fields``."""
        from .classify import preprocessing

        version, params = preprocessing(model.input_names)
        tensors = {n: {"shape": ["B", *t.shape[1:]], "dtype": "float32"}
                   for n, t in zip(model.input_names, model.example_inputs(1))}
        base = {"architecture": model.arch_name, "config": {}, "labels": list(model.config.class_names),
                "aus": list(getattr(model.config, "au_names", ())),
                "inputs": {**tensors, "outputs": list(model.output_names)},
                "preprocess_version": version, "preprocess": params}
        return cls(**{**base, **fields})

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path, check_config: bool = True) -> "ModelCard":
        """The card in ``d`` (read from ``path``), refused unless it passes ``validate_card``."""
        validate_card(d, path, check_config)
        return cls(**d)

    def spec(self, weights_dir: str | Path) -> ModelSpec:
        """The engines' view of these weights: per-sample tensor shapes from ``inputs``, output
        sizes from the label and AU lists, the weights' hash. Refused unless the card's
        preprocessing is the one this code computes."""
        path = Path(weights_dir) / CARD_FILE
        inputs, outputs = self._tensors(path)
        self._check_preprocess(tuple(inputs), path)
        return ModelSpec(self.architecture, inputs, outputs, tuple(self.labels), tuple(self.aus),
                         weights_hash(weights_dir), Path(weights_dir))

    def _tensors(self, path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
        sizes = {"logits": (len(self.labels),), "au_logits": (len(self.aus),)}
        shapes = {n: v.get("shape", []) for n, v in self.inputs.items() if isinstance(v, dict)}
        outputs = self.inputs.get("outputs")
        if not shapes or not all(len(s) > 1 and all(_int(x) for x in s[1:]) for s in shapes.values()) \
                or not isinstance(outputs, list) or not outputs or not set(outputs) <= set(sizes):
            raise UserError(f"{path}: 'inputs' must give each input's shape (batch axis first) and list the "
                            f"model's 'outputs' ({' and/or '.join(sizes)}), as save_model writes them")
        return {n: tuple(s[1:]) for n, s in shapes.items()}, {n: sizes[n] for n in outputs}

    def _check_preprocess(self, input_names: tuple[str, ...], path: Path) -> None:
        """Weights trained on inputs this code no longer computes would classify noise: refuse them."""
        from .classify import preprocessing

        version, params = preprocessing(input_names)
        if self.preprocess_version != version:
            raise UserError(f"{path}: 'preprocess_version' is {self.preprocess_version}, but this code's "
                            f"preprocessing is version {version}: the weights were trained on inputs it no longer "
                            "makes (retrain them, or run the release that wrote them)")
        changed = {k: (self.preprocess.get(k), params.get(k)) for k in {**params, **self.preprocess}
                   if self.preprocess.get(k) != params.get(k)}
        if self.preprocess and changed:
            said = ", ".join(f"{k} {_show(card)} (code: {_show(code)})" for k, (card, code) in sorted(changed.items()))
            raise UserError(f"{path}: 'preprocess' differs from this code's version-{version} preprocessing: {said}")


# ------------------------------------------------------------------ card schema

#: Inclusive bounds of numeric config fields by name (element bounds for list fields).
#: Other int fields (widths, channel counts) get DEFAULT_INT_RANGE, other floats need only be finite.
CONFIG_RANGES: dict[str, tuple[float, float]] = {
    "flow_size": (4, 512), "apex_size": (4, 512), "patch": (1, 512), "depth": (1, 64), "heads": (1, 64),
    "mlp_ratio": (0.01, 16.0), "dropout": (0.0, 1.0), "keep_ratios": (1e-3, 1.0),
    # FDP and the point-cloud model (models/fdp.py, models/pointcloud.py)
    "n_frames": (2, 64), "frame_size": (8, 512), "dynamic_size": (8, 256), "n_points": (1, 468), "k": (1, 64),
    "in_features": (4, 64), "motion_floor": (1e-6, 100.0),
}
DEFAULT_INT_RANGE = (1, 4096)
#: The largest model a card may describe (the shipped MEDN has 0.16 M parameters); counted
#: from the config, so an absurd card is refused without allocating anything.
MAX_PARAMETERS = 50_000_000
#: MEDN attention is quadratic in the apex tokens: (apex_size // patch) ** 2 at most this.
MAX_TOKENS = 4096

#: Top-level card fields -> (JSON type check, description for the message).
_TOP_LEVEL: dict[str, tuple[Any, str]] = {
    "architecture": (lambda v: isinstance(v, str) and bool(v), "a model name"),
    "config": (lambda v: isinstance(v, dict), "an object"),
    "labels": (lambda v: _names(v), "a non-empty list of distinct non-empty strings"),
    "aus": (lambda v: _names(v, allow_empty=True), "a list of distinct non-empty strings"),
    "inputs": (lambda v: isinstance(v, dict), "an object"),
    "preprocess_version": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "preprocess": (lambda v: isinstance(v, dict), "an object"),
    "training": (lambda v: isinstance(v, dict), "an object"),
    "loso": (lambda v: isinstance(v, dict), "an object"),
    "date": (lambda v: isinstance(v, str), "a string"),
    "seed": (lambda v: _int(v), "an integer"),
    "notes": (lambda v: isinstance(v, str), "a string"),
    "card_version": (lambda v: _int(v) and 1 <= v <= CARD_VERSION, f"an integer 1..{CARD_VERSION}"),
}


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond any float
        return False


def _names(v: Any, allow_empty: bool = False) -> bool:
    return (isinstance(v, list) and (allow_empty or bool(v)) and all(isinstance(x, str) and x.strip() for x in v)
            and len(set(v)) == len(v))


def _show(v: Any) -> str:
    """A value for an error message, cut short (a card may hold anything)."""
    try:
        s = json.dumps(v, default=str)
    except ValueError:  # nothing JSON can load makes this, but ModelCard fields can be set in code
        s = f"<{type(v).__name__}>"
    return s if len(s) <= 60 else s[:57] + "..."


def validate_card(d: dict[str, Any], path: Path, check_config: bool = True) -> None:
    """Raise ``UserError`` naming ``path`` and the field unless ``d`` is a well-formed card:
    known fields of the right types, a registered architecture whose config fields have
    the types and ranges of its config dataclass, and label/AU lists that fit the config.
    Runs before any module is built, so no card value can allocate or crash first.
    ``check_config=False`` leaves out what only the model code (torch) knows: the
    architecture, its config and the label/AU counts it implies."""
    missing = [k for k in ("architecture", "config", "labels") if k not in d]
    if missing:
        raise UserError(f"{path}: model card lacks {', '.join(missing)}")
    unknown = sorted(set(d) - set(_TOP_LEVEL))
    if unknown:
        raise UserError(f"{path}: unknown model card field(s) {unknown}; known: {', '.join(_TOP_LEVEL)}")
    for name, value in d.items():
        ok, want = _TOP_LEVEL[name]
        if not ok(value):
            raise UserError(f"{path}: '{name}' must be {want}, got {_show(value)}")
    _check_inputs(d.get("inputs", {}), path)
    if check_config:
        _check_architecture(d, path)


def _check_architecture(d: dict[str, Any], path: Path) -> None:
    from .models.registry import list_models, make_config

    arch = d["architecture"]
    if arch not in list_models():
        raise UserError(f"{path}: 'architecture': unknown model {arch!r}; known: {', '.join(list_models())}")
    config_cls = type(make_config(arch))
    _check_config(d["config"], config_cls, path)
    try:
        cfg = make_config(arch, **d["config"])
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: 'config': {e}") from None
    # The lists name the model's outputs, so their lengths must match (an empty AU list
    # names none: a card written without them still loads for training and evaluation).
    for card_key, cfg_key, what in (("labels", "class_names", "classes"), ("aus", "au_names", "AUs")):
        named = d.get(card_key, [])
        if hasattr(cfg, cfg_key) and (named or card_key == "labels") and len(named) != len(getattr(cfg, cfg_key)):
            raise UserError(f"{path}: '{card_key}' names {len(named)} {what} but config.{cfg_key} "
                            f"has {len(getattr(cfg, cfg_key))} (the model's outputs)")
    _check_buildable(arch, cfg, path)


def _check_inputs(inputs: dict[str, Any], path: Path) -> None:
    for name, v in inputs.items():
        if isinstance(v, dict):
            shape, dtype = v.get("shape", []), v.get("dtype", "")
            if not (isinstance(shape, list) and all(isinstance(x, str) or (_int(x) and x > 0) for x in shape)):
                raise UserError(f"{path}: 'inputs.{name}.shape' must be a list of positive integers "
                                f"(or axis names), got {_show(shape)}")
            if not isinstance(dtype, str):
                raise UserError(f"{path}: 'inputs.{name}.dtype' must be a string, got {_show(dtype)}")
        elif not isinstance(v, list):
            raise UserError(f"{path}: 'inputs.{name}' must be an object or a list, got {_show(v)}")


def _check_config(config: dict[str, Any], config_cls: type, path: Path) -> None:
    """Each key a field of ``config_cls``, each value of that field's type and in range."""
    hints = typing.get_type_hints(config_cls)
    fields = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise UserError(f"{path}: 'config' has unknown field(s) {unknown}; {config_cls.__name__} has {', '.join(fields)}")
    for key, value in config.items():
        why = _type_error(value, hints.get(key, Any), key)
        if why:
            raise UserError(f"{path}: 'config.{key}' {why}, got {_show(value)}")


def _type_error(value: Any, tp: Any, key: str) -> str | None:
    """Why ``value`` (from JSON) does not fit annotation ``tp``; None when it does."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = [_type_error(value, a, key) for a in args if a is not type(None)]
        return None if any(e is None for e in errors) else errors[0]
    if origin is tuple:
        item = args[0] if args else Any
        if not isinstance(value, list) or not value:
            return f"must be a non-empty list of {_type_name(item)}"
        for i, x in enumerate(value):
            why = _type_error(x, item, key)
            if why:
                return f"item {i} {why}"
        if item is str and len(set(value)) != len(value):
            return "must be a list of distinct names"
        return None
    if tp is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if tp is str:
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
    if tp is int:
        if not _int(value):
            return "must be an integer"
        lo, hi = CONFIG_RANGES.get(key, DEFAULT_INT_RANGE)
        return None if lo <= value <= hi else f"must be in {lo}..{hi}"
    if tp is float:
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)):
            return "must be a number"
        lo, hi = CONFIG_RANGES.get(key, (-math.inf, math.inf))
        return None if lo <= value <= hi else f"must be in {lo:g}..{hi:g}"
    return None  # an annotation this schema does not know: left to the model's own checks


def _type_name(tp: Any) -> str:
    return {int: "integers", float: "numbers", str: "non-empty strings", bool: "booleans"}.get(tp, str(tp))


def _check_buildable(arch: str, cfg: Any, path: Path) -> None:
    """Refuse what the field-by-field check cannot see: fields that do not fit together (a
    crash at the first forward) and a model too large (gigabytes allocated by the build).
    Counted from the config (``_SIZE_RULES``), not by building: even torch's meta device
    would cost seconds of start-up."""
    rules = _SIZE_RULES.get(arch)
    if rules is None:
        return
    why, n = rules(cfg)
    if why:
        raise UserError(f"{path}: 'config': {why}")
    if n > MAX_PARAMETERS:
        raise UserError(f"{path}: 'config' describes a {arch} of {n / 1e6:.0f} M parameters "
                        f"(at most {MAX_PARAMETERS / 1e6:.0f} M)")


def _medn_size(c) -> tuple[str | None, int]:
    """(inconsistency, parameter count) of a MEDNConfig, following ``models.medn``
    (tests/test_card_schema.py checks the count against the built module)."""
    tokens = (c.apex_size // c.patch) ** 2
    if c.patch > c.apex_size:
        return f"patch {c.patch} is larger than apex_size {c.apex_size}", 0
    if tokens > MAX_TOKENS:
        return f"apex_size / patch give {tokens} tokens (at most {MAX_TOKENS}: attention is quadratic)", 0
    if c.dim % c.heads:
        return f"dim {c.dim} is not divisible by heads {c.heads}", 0
    if c.flow_size >> len(c.motion_channels) < 1:
        return f"flow_size {c.flow_size} does not survive {len(c.motion_channels)} 2x poolings", 0
    d, f, hidden = c.dim, c.feat_dim, int(c.dim * c.mlp_ratio)
    if hidden < 1:
        return f"dim * mlp_ratio = {d * c.mlp_ratio:g} leaves no MLP width", 0
    n, c_in, size = 0, 3, c.flow_size
    for ch in c.motion_channels:                      # conv (no bias) + BatchNorm
        n, c_in, size = n + c_in * ch * 9 + 2 * ch, ch, size // 2
    n += c_in * size * size * f + f                   # motion projection
    n += (f + 1) * len(c.au_names)                    # AU head
    block = 4 * d + (d + 1) * 3 * d + (d + 1) * d + (d + 1) * hidden + (hidden + 1) * d
    n += c.patch ** 2 * d + d + d + (tokens + 1) * d + c.depth * block + 2 * d   # patch, cls, pos, blocks, norm
    n += d * (1 + len(c.keep_ratios)) * f + f         # pooled projection
    n += 2 * f * f + f + (f + 1) * len(c.class_names)  # gate, head
    return None, n


def _ststnet_size(c) -> tuple[str | None, int]:
    side = ((c.flow_size + 2 - 3) // 3 + 1) // 2
    if side < 1:
        return f"flow_size {c.flow_size} is too small for the pooling", 0
    return None, sum(3 * ch * 9 + ch + 2 * ch for ch in c.channels) + (sum(c.channels) * side * side + 1) * len(c.class_names)


def _fdp_size(c) -> tuple[str | None, int]:
    """(inconsistency, parameter count) of an FDPConfig, following ``models.fdp``."""
    if c.frame_size % 8:
        return f"frame_size {c.frame_size} is not a multiple of 8 (the stem's stride)", 0
    if c.dynamic_size % 8:
        return f"dynamic_size {c.dynamic_size} is not a multiple of 8 (three 2x upsamplings)", 0
    tokens = (c.frame_size // 8) ** 2
    if tokens > MAX_TOKENS:
        return f"frame_size {c.frame_size} gives {tokens} tokens (at most {MAX_TOKENS}: attention is quadratic)", 0
    if c.dim % c.heads:
        return f"dim {c.dim} is not divisible by heads {c.heads}", 0
    d, hidden, q2 = c.dim, int(c.dim * c.mlp_ratio), (c.dynamic_size // 8) ** 2
    if hidden < 1:
        return f"dim * mlp_ratio = {d * c.mlp_ratio:g} leaves no MLP width", 0
    n = 2 * 16 * 16 + 16 + 2 * 16 + 16 * d * 4 + d + tokens * d                 # stem, positions
    block = 2 * d + d * 9 + d + 2 * d + 3 * d * d + 3 * d + d * d + d + 2 * d + d * hidden + hidden + hidden * d + d
    n += c.depth * block + 2 * d + d + 1 + d * d + d                             # blocks, norm, scorer, rank_proj
    n += (d + 1) * (len(c.class_names) + len(c.au_names))                        # heads
    n += d * 16 * q2 + 16 * q2 + 16 * 16 * 16 + 16 + 16 * 8 * 16 + 8 + 8 * 16 + 1  # decoder
    return None, n


def _pointcloud_size(c) -> tuple[str | None, int]:
    """(inconsistency, parameter count) of a PointCloudConfig, following ``models.pointcloud``."""
    if c.k > c.n_points:
        return f"k {c.k} is larger than n_points {c.n_points}", 0
    f, l = c.in_features, c.local_dim
    n = 2 * f * l + l + 2 * l + l * l + l + 2 * l
    prev = f + l
    for ch in c.channels:
        n, prev = n + prev * ch + ch + 2 * ch, ch
    n += 2 * prev * 64 + 64 + 65 * (len(c.class_names) + len(c.au_names))
    return None, n


#: architecture -> its config's consistency and size; one missing here gets the field checks only
_SIZE_RULES = {"medn": _medn_size, "ststnet": _ststnet_size, "fdp": _fdp_size, "pointcloud": _pointcloud_size}


def save_model(model: nn.Module, card: ModelCard, out_dir: str | Path) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``out_dir`` (created)."""
    from safetensors.torch import save_file

    from .models.registry import config_to_dict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card.architecture = model.arch_name
    card.config = config_to_dict(model.config)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"architecture": model.arch_name})
    (out / CARD_FILE).write_text(json.dumps(dataclasses.asdict(card), indent=2) + "\n")
    return out


def weights_hash(weights_dir: str | Path) -> str:
    """sha256 over the weights file and the card: any retraining or config edit changes it."""
    h = hashlib.sha256()
    for name in (WEIGHTS_FILE, CARD_FILE):
        p = Path(weights_dir) / name
        if not p.is_file():
            raise UserError(f"{p}: not found (a weights folder holds {WEIGHTS_FILE} and {CARD_FILE})")
        h.update(name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_spec(weights_dir: str | Path) -> ModelSpec:
    """The ``ModelSpec`` of a weights folder, from its card alone (``ModelCard.spec``).

    Where torch is not installed (a machine that runs engines exported elsewhere) the
    architecture's config cannot be checked, as only the model code knows it; the other
    fields are, and every cached engine is keyed by the card's bytes (``weights_hash``), so
    one found for this card was exported from it after the full check."""
    card = read_card(weights_dir, check_config=importlib.util.find_spec("torch") is not None)
    return card.spec(weights_dir)


def read_card(weights_dir: str | Path, check_config: bool = True) -> ModelCard:
    path = Path(weights_dir) / CARD_FILE
    if not path.is_file():
        raise UserError(f"{path}: model card not found (expected a folder with {CARD_FILE} and {WEIGHTS_FILE})")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an int of over 4300 digits
        raise UserError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the model card ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return ModelCard.from_dict(data, path, check_config)


def load_model(weights_dir: str | Path) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model from the card and load its tensors; eval mode, CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models.registry import create_model

    card = read_card(weights_dir)
    card_path, path = Path(weights_dir) / CARD_FILE, Path(weights_dir) / WEIGHTS_FILE
    try:
        model = create_model(card.architecture, **card.config)
    except (TypeError, ValueError) as e:
        raise UserError(f"{card_path}: cannot build {card.architecture!r} from its config ({e})") from None
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None
    _check_state(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval(), card


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise UserError(f"{path}: tensors do not match architecture {model.arch_name!r} "
                        f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}{'...' if len(extra) > 3 else ''})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{path}: tensor {k} has shape {tuple(state[k].shape)}, architecture "
                            f"{model.arch_name!r} expects {tuple(v.shape)}")
        if state[k].dtype != v.dtype:
            raise UserError(f"{path}: tensor {k} is {state[k].dtype}, expected {v.dtype}")
