import tomllib

import pytest

from minidr.config import Config, from_dict, load
from minidr.errors import ConfigError


def test_toml_round_trip_keeps_every_setting(tmp_path):
    cfg = Config()
    path = tmp_path / "minidr.toml"
    path.write_text(cfg.to_toml())
    assert load(path) == cfg
    # every setting is documented by a comment line just above it
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if " = " in line:
            assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 4, line


def test_replace_changes_one_setting_and_the_hash():
    cfg = Config()
    new = cfg.replace(detection={"threshold": 3.0})
    assert new.detection.threshold == 3.0
    assert new.detection.min_pixels == cfg.detection.min_pixels
    assert new.hash() != cfg.hash()
    assert Config().hash() == cfg.hash()


def test_unknown_setting_is_named():
    with pytest.raises(ConfigError, match="detection.treshold"):
        from_dict({"detection": {"treshold": 3}})
    with pytest.raises(ConfigError, match=r"\[detect\]"):
        from_dict({"detect": {}})


def test_invalid_value_is_refused():
    with pytest.raises(ConfigError, match="threshold"):
        from_dict({"detection": {"threshold": -1}})


def test_malformed_toml_names_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[detection\nthreshold = ")
    with pytest.raises(ConfigError, match="bad.toml"):
        load(p)
    assert tomllib  # the stdlib parser is what load uses
