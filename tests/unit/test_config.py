"""Config validation: wrong keys or values give errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agents.pipeline import Pipeline
from agents.stage import StageConfigError
from config.settings import DEFAULT_CONFIG, ConfigError, load_config
from models.factory import ModelConfigError


def _write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mutate(raw)  # type: ignore[operator]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_default_config_loads_and_hash_is_stable() -> None:
    a, b = load_config(), load_config(DEFAULT_CONFIG)
    assert a == b and a.config_hash() == b.config_hash()
    assert len(a.stages) >= 3
    assert len({s.extractor for s in a.stages}) >= 3
    assert a.with_overrides(horizon_s=2.0).config_hash() != a.config_hash()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.update(horizn_s=3), "horizn_s"),
        (lambda c: c.update(horizon_s=-1), "horizon_s"),
        (lambda c: c["voting"].update(threshold=0.4), "voting.threshold"),
        (lambda c: c["voting"].update(quorum=9), "quorum"),
        (
            lambda c: c["stages"][0]["model"].update(path="river.linear_model.LogisticRegression"),
            "stages.0.model",
        ),
        (lambda c: c["stages"][2].update(name=c["stages"][0]["name"]), "unique"),
        (lambda c: c.update(trigger=["candle"]), "trigger"),
    ],
)
def test_invalid_configs_name_the_key(tmp_path: Path, mutate: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        load_config(_write(tmp_path, mutate))
    assert "c.yaml" in str(err.value)


def test_unknown_extractor_fails_at_start_up_naming_the_stage(tmp_path: Path) -> None:
    # the extractor registry is agents.features.EXTRACTORS alone (config cannot import agents),
    # so the name is checked when the kernel is built, like a model path
    cfg = load_config(_write(tmp_path, lambda c: c["stages"][1].update(extractor="astrology")))
    second = load_config().stages[1].name
    with pytest.raises(StageConfigError, match=rf"stages\.{second}\.extractor.*astrology"):
        Pipeline(cfg)


def test_bad_model_path_fails_at_start_up(tmp_path: Path) -> None:
    def mutate(c: dict) -> None:  # type: ignore[type-arg]
        c["stages"][0]["model"] = {"path": "river.linear_model.NoSuchModel"}

    cfg = load_config(_write(tmp_path, mutate))
    with pytest.raises(ModelConfigError, match="NoSuchModel"):
        Pipeline(cfg)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_swapping_a_model_needs_no_code(tmp_path: Path) -> None:
    def mutate(c: dict) -> None:  # type: ignore[type-arg]
        c["stages"][2]["model"] = {
            "path": "river.tree.HoeffdingTreeClassifier",
            "params": {"grace_period": 100},
        }

    cfg = load_config(_write(tmp_path, mutate))
    pipe = Pipeline(cfg)
    assert type(pipe.stages[2].new_state().model).__name__ == "HoeffdingTreeClassifier"
    assert pipe.stages[2].model_id != Pipeline(load_config()).stages[2].model_id
