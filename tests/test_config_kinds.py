"""The detection and motion sections are discriminated unions chosen by ``kind``."""

import pytest

from celltrack.config import load_config, save_config
from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig
from celltrack.config.pipeline import PipelineConfig
from celltrack.config.project import ProjectConfig, renamed_sections
from celltrack.errors import ConfigError


def test_kind_chooses_the_section_class_and_a_missing_kind_is_elephants():
    cfg = PipelineConfig.model_validate(
        {"detection": {"kind": "indicator"}, "motion": {"kind": "movement_vectors"}}
    )
    assert isinstance(cfg.detection, IndicatorConfig)
    assert isinstance(cfg.motion, MovementConfig)
    plain = PipelineConfig.model_validate({"detection": {"train": {"epochs": 3}}, "motion": {}})
    assert isinstance(plain.detection, DetectionConfig) and plain.detection.train.epochs == 3
    assert isinstance(plain.motion, FlowConfig) and plain.motion.kind == "flow"
    classical = ProjectConfig.model_validate({"detection": {"kind": "classical"}})
    assert isinstance(classical.detection, DetectionConfig)


def test_a_section_validates_against_its_kinds_fields_only():
    with pytest.raises(ValueError, match="nms"):  # indicator's key under the ellipsoid kind
        PipelineConfig.model_validate({"detection": {"nms": {"threshold": 0.3}}})
    with pytest.raises(ValueError, match="use one of ellipsoid, classical, indicator"):
        PipelineConfig.model_validate({"detection": {"kind": "blob"}})
    with pytest.raises(ValueError, match="use one of flow, movement_vectors"):
        PipelineConfig.model_validate({"motion": {"kind": "optical"}})


def test_joint_motion_needs_the_indicator():
    with pytest.raises(ValueError, match=r"needs detection\.kind: indicator"):
        PipelineConfig.model_validate({"motion": {"kind": "movement_vectors", "joint": True}})
    joint = PipelineConfig.model_validate(
        {"detection": {"kind": "indicator"}, "motion": {"kind": "movement_vectors", "joint": True}}
    )
    assert joint.motion.joint


@pytest.mark.parametrize("old", ["flow", "use_flow", "min_flow_links"])
def test_old_key_names_say_the_new_one(old):
    with pytest.raises(ValueError, match=f"'{old}' is now"):
        PipelineConfig.model_validate({old: {} if old == "flow" else 5})


def test_a_saved_project_config_with_the_old_name_still_loads():
    stored = {"flow": FlowConfig.cpu().model_dump(mode="json"), "prior": False}
    cfg = ProjectConfig.model_validate(renamed_sections(stored))
    assert cfg.motion == FlowConfig.cpu() and cfg.prior is False


def test_the_cpu_preset_follows_the_chosen_kind():
    cfg = PipelineConfig.model_validate(
        {
            "preset": "cpu",
            "detection": {"kind": "indicator", "nms": {"threshold": 0.4}},
            "motion": {"kind": "movement_vectors"},
        }
    ).with_preset(cuda=False)
    assert cfg.detection.train == IndicatorConfig.cpu().train  # the indicator's preset
    assert cfg.detection.nms.threshold == 0.4  # the key set wins
    assert cfg.motion == MovementConfig.cpu()


def test_kinds_round_trip_through_a_file(tmp_path):
    cfg = PipelineConfig(
        detection=IndicatorConfig.cpu(), motion=MovementConfig.cpu(joint=True)
    )
    path = save_config(cfg, tmp_path / "c.yaml")
    assert load_config(path, PipelineConfig) == cfg
    (tmp_path / "bad.yaml").write_text("motion:\n  kind: movement_vectors\n  joint: true\n")
    with pytest.raises(ConfigError, match=r"detection\.kind: indicator"):
        load_config(tmp_path / "bad.yaml", PipelineConfig)
