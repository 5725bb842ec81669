"""Recognition models: ``create_model(name, **overrides)`` builds a registered architecture.

Every model has ``config`` (a frozen dataclass), ``arch_name``, ``input_names``,
``output_names`` and ``example_inputs(batch)``; ``model(*inputs)`` returns a tuple
in ``output_names`` order (MEDN: logits, au_logits; STSTNet: logits; FDP and the
point-cloud model: logits, au_logits).
"""
from .fdp import FDP, FDPConfig
from .medn import DEFAULT_AUS, MEDN, MEDNConfig, ModelOutput, orthogonality_loss
from .pointcloud import PointCloudConfig, PointCloudNet
from .registry import config_to_dict, create_model, list_models, make_config, register_model
from .ststnet import STSTNet, STSTNetConfig

__all__ = ["DEFAULT_AUS", "FDP", "FDPConfig", "MEDN", "MEDNConfig", "ModelOutput", "PointCloudConfig",
           "PointCloudNet", "STSTNet", "STSTNetConfig", "config_to_dict", "create_model", "list_models",
           "make_config", "orthogonality_loss", "register_model"]
