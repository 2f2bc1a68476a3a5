"""Measurement plug-ins: loading, checking, running, and their columns through the release schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from minidr import plugins
from minidr.config import Config, from_dict
from minidr.errors import ConfigError, InputError
from minidr.release import schema

PLUGIN = '''
import numpy as np
from minidr.plugins import Column, source_measurement

@source_measurement(Column("peakValue", "float32", "electron", "image value at the nearest pixel"),
                    Column("xPlusY", "float64", "pixel", "x + y"))
def peak(image, variance, mask, x, y, fwhm, njy_per_electron):
    iy = np.clip(np.round(y).astype(int), 0, image.shape[0] - 1)
    ix = np.clip(np.round(x).astype(int), 0, image.shape[1] - 1)
    return {"peakValue": image[iy, ix], "xPlusY": x + y}

def undecorated(image, variance, mask, x, y, fwhm, njy_per_electron):
    return {}

@source_measurement(Column("psfFlux"))
def clash(image, variance, mask, x, y, fwhm, njy_per_electron):
    return {"psfFlux": x}

@source_measurement(Column("short"))
def wrong_length(image, variance, mask, x, y, fwhm, njy_per_electron):
    return {"short": x[:-1]}

@source_measurement(Column("boom"))
def raises(image, variance, mask, x, y, fwhm, njy_per_electron):
    raise ValueError("negative sky")
'''


@pytest.fixture
def repo_dir(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mine.py").write_text(PLUGIN)
    return tmp_path


def _frame():
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (20, 30)).astype(np.float32)
    return image, np.ones_like(image), np.zeros(image.shape, np.uint16), np.array([3.2, 10.0, 28.7]), \
        np.array([1.0, 5.6, 18.9]), np.full(3, 3.0)


def test_load_file_relative_to_repo_and_measure(repo_dir):
    p = plugins.load("plugins/mine.py:peak", base=repo_dir)
    assert [c.name for c in p.columns] == ["peakValue", "xPlusY"] and len(p.source_sha256) == 64
    image, var, mask, x, y, fwhm = _frame()
    out = plugins.measure([p], image, var, mask, x, y, fwhm, 57.5)
    assert out["peakValue"].type == pa.float32() and out["xPlusY"].type == pa.float64()
    np.testing.assert_array_equal(out["peakValue"].to_numpy(), image[[1, 6, 19], [3, 10, 29]])
    np.testing.assert_allclose(out["xPlusY"].to_numpy(), x + y)
    f = p.fields()[0]
    assert f.metadata[b"unit"] == b"electron" and f.metadata[b"plugin"] == b"plugins/mine.py:peak"


def test_load_importable_module(repo_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_dir / "plugins"))
    p = plugins.load("mine:peak")
    assert p.function.__module__ == "mine" and len(p.source_sha256) == 64
    with pytest.raises(ConfigError, match="not decorated"):
        plugins.load("numpy:sum")


@pytest.mark.parametrize("spec, message", [
    ("plugins/mine.py", "expected 'module:function'"),
    ("plugins/missing.py:peak", "not found"),
    ("plugins/mine.py:nothing", "has no function nothing"),
    ("plugins/mine.py:undecorated", "not decorated"),
    ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
])
def test_bad_specs_name_the_problem(repo_dir, spec, message):
    with pytest.raises(ConfigError, match=message):
        plugins.load(spec, base=repo_dir)


def test_column_clash_with_source_is_refused(repo_dir):
    with pytest.raises(ConfigError, match="column psfFlux already exists"):
        plugins.load_all(["plugins/mine.py:clash"], base=repo_dir, reserved=schema.SOURCE_SCHEMA.names)


@pytest.mark.parametrize("fn, message", [("wrong_length", "has shape"), ("raises", "ValueError: negative sky")])
def test_bad_plugin_output_names_the_plugin(repo_dir, fn, message):
    p = plugins.load(f"plugins/mine.py:{fn}", base=repo_dir)
    with pytest.raises(InputError, match=message) as err:
        plugins.measure([p], *_frame(), 1.0)
    assert fn in str(err.value)


def test_bad_column_declarations():
    with pytest.raises(ConfigError, match="not an identifier"):
        plugins.Column("my column")
    with pytest.raises(ConfigError, match="dtype"):
        plugins.Column("c", "float16")


def test_config_round_trip_and_validation():
    cfg = Config().replace(measurement={"plugins": ["plugins/mine.py:peak"]})
    import tomllib

    assert from_dict(tomllib.loads(cfg.to_toml())) == cfg
    assert cfg.hash() != Config().hash()
    with pytest.raises(ConfigError, match="must be a list"):
        Config().replace(measurement={"plugins": "plugins/mine.py:peak"})
    with pytest.raises(ConfigError, match="not 'module:function'"):
        Config().replace(measurement={"plugins": ["nocolon"]})


def test_fingerprint_follows_config_and_plugin_code(repo_dir):
    cfg = Config().replace(measurement={"plugins": ["plugins/mine.py:peak"]})
    p = plugins.load_all(cfg.measurement.plugins, base=repo_dir)
    a = plugins.processing_fingerprint(cfg, p)
    assert plugins.processing_fingerprint(Config(), []) != a
    # the release settings do not change how frames are processed
    assert plugins.processing_fingerprint(cfg.replace(release={"partition_rows": 10}), p) == a
    (repo_dir / "plugins" / "mine.py").write_text(PLUGIN + "\n# changed\n")
    assert plugins.processing_fingerprint(cfg, plugins.load_all(cfg.measurement.plugins, base=repo_dir)) != a


def test_conform_keeps_plugin_columns_only(repo_dir):
    p = plugins.load("plugins/mine.py:peak", base=repo_dir)
    base = pa.table({n: pa.nulls(2, type=schema.SOURCE_SCHEMA.field(n).type) for n in schema.SOURCE_SCHEMA.names
                     if n != schema.HEALPIX_COLUMN})
    t = base.append_column(p.fields()[1], pa.array([1.0, 2.0])).append_column("scratch", pa.array([0, 1]))
    out = schema.conform(t, schema.SOURCE_SCHEMA, name="Source")
    assert out.column_names[-1] == "xPlusY" and "scratch" not in out.column_names
    assert out.schema.field("xPlusY").metadata[b"unit"] == b"pixel"
