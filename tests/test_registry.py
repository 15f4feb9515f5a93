"""Registry: discovery over entry points, lazy loading, did-you-mean, duplicates and broken plugins."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import registry
from registry.core import Registry
from tests.conftest import run_python

BUILTINS = {
    "encoders": {
        "tiny_eeg",
        "tiny_video",
        "labram_base",
        "labram_large",
        "labram_huge",
        "video_swin",
        "swin3d_t",
        "swin3d_s",
        "swin3d_b",
    },
    "strategies": {
        "head_only",
        "full",
        "last_k",
        "bitfit",
        "lora",
        "prefix",
        "prompt",
        "ia3",
        "adalora",
        "loha",
        "lokr",
    },
    "heads": {"linear", "mlp"},
    "losses": {"clip"},
    "datasets": {"synthetic", "arrays"},
}


def test_builtins_are_discovered_through_entry_points(reg):
    for kind, names in BUILTINS.items():
        assert names <= set(reg.names(kind)), kind
        for entry in reg.entries(kind):
            if entry.name in names:
                assert entry.distribution == "peftzoo"
                assert entry.description, f"{kind} {entry.name} has no description"


def test_get_and_build(reg):
    head = reg.build("heads", {"name": "mlp", "hidden": [16]}, in_dim=8, out_dim=4)
    import torch

    assert head(torch.zeros(3, 8)).shape == (3, 4)
    assert reg.get("losses", "clip") is reg.get("losses", "clip")


def test_unknown_name_suggests_installed(reg):
    with pytest.raises(registry.UnknownComponentError) as info:
        reg.get("strategies", "head_onyl")
    assert "did you mean 'head_only'" in str(info.value)
    assert "installed: adalora, bitfit, full, head_only, ia3" in str(info.value)


def test_unknown_kind(reg):
    with pytest.raises(registry.UnknownKindError, match="did you mean 'strategies'"):
        reg.names("strategy")


def test_bad_options_are_located(reg):
    with pytest.raises(registry.ComponentConfigError, match="lr_scale"):
        reg.build("strategies", {"name": "full", "lr_scale": -1})
    with pytest.raises(registry.ComponentConfigError, match="hiden"):
        reg.build("heads", {"name": "mlp", "hiden": [3]}, in_dim=2, out_dim=2)


def test_module_level_api():
    assert "tiny_eeg" in registry.names("encoders")
    assert registry.get("heads", "linear").description
    encoder = __import__("encoders").build("tiny_eeg", depth=1, dim=16, heads=2)
    assert encoder.feature_dim == 16 and len(encoder.blocks) == 1


def test_list_registry_json_check_all_ok():
    out = run_python("-m", "registry", "--json", "--check")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows and all(set(r) >= {"kind", "name", "target", "distribution", "version", "status"} for r in rows)
    listed = {(r["kind"], r["name"]) for r in rows}
    for kind, names in BUILTINS.items():
        for name in names:
            assert (kind, name) in listed
    assert all(r["status"] == "ok" for r in rows if r["distribution"] == "peftzoo"), rows


def test_list_registry_table_and_kind_filter():
    out = run_python("-m", "registry", "--kind", "heads")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["KIND", "NAME", "DISTRIBUTION"]
    assert all(line.startswith("heads") for line in lines[1:] if line.strip())
    assert any("mlp" in line and "no activation" in line for line in lines)


def test_listing_imports_nothing():
    code = (
        "import sys, registry\n"
        "rows = registry.entries()\n"
        "assert rows and all(r.description for r in rows if r.distribution == 'peftzoo')\n"
        "heavy = [m for m in ('torch', 'encoders', 'adapters', 'recipes') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = run_python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- third-party distributions made in a temp dir ------------------------------------------------
def make_distribution(root: Path, dist: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> None:
    """A distribution as pip leaves it in site-packages: its modules and a .dist-info folder."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = []
    for group, items in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in items.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


GOOD_STRATEGY = """
    from adapters.strategies.base import Strategy, StrategyConfig, StrategyReport

    class Good(Strategy):
        description = "a well-behaved plugin strategy"
        Config = StrategyConfig

        def apply(self, encoder):
            return StrategyReport(strategy=self.name, trainable=[], num_trainable=0, trains_encoder=False)
"""


@pytest.fixture()
def plugin_dir(tmp_path):
    make_distribution(
        tmp_path, "zoo_good", {"peftzoo.strategies": {"good": "zoo_good_mod:Good"}}, {"zoo_good_mod": GOOD_STRATEGY}
    )
    make_distribution(
        tmp_path,
        "zoo_broken",
        {
            "peftzoo.strategies": {
                "needs_dep": "zoo_missing_dep:X",
                "crashes": "zoo_crash:X",
                "wrong_attr": "zoo_good_mod:DoesNotExist",
                "not_a_component": "zoo_plain:X",
                "full": "zoo_good_mod:Good",
            },
        },
        {
            "zoo_missing_dep": "import package_that_is_not_installed\nX = 1\n",
            "zoo_crash": "raise RuntimeError('plugin crashed at import')\n",
            "zoo_plain": "class X:\n    pass\n",
        },
    )
    return tmp_path


def test_broken_and_duplicate_plugins_are_reported_and_the_rest_works(plugin_dir):
    out = run_python("-m", "registry", "--json", "--check", env={"PYTHONPATH": str(plugin_dir)})
    assert out.returncode == 1  # --check fails when any row is in error
    assert "Traceback" not in out.stderr
    rows = {(r["name"], r["distribution"]): r for r in json.loads(out.stdout)}
    assert rows[("good", "zoo_good")]["status"] == "ok"
    assert rows[("needs_dep", "zoo_broken")]["status"].startswith("error: ModuleNotFoundError:")
    assert rows[("crashes", "zoo_broken")]["status"] == "error: RuntimeError: plugin crashed at import"
    assert rows[("wrong_attr", "zoo_broken")]["status"].startswith("error: AttributeError:")
    assert "has no `Config`" in rows[("not_a_component", "zoo_broken")]["status"]
    # two distributions registering `full`: both rows say so, neither wins silently
    assert "DuplicateComponentError" in rows[("full", "zoo_broken")]["status"]
    assert "DuplicateComponentError" in rows[("full", "peftzoo")]["status"]
    assert "zoo_broken 1.0" in rows[("full", "peftzoo")]["status"]
    # built-ins other than the duplicated name are unaffected
    assert rows[("head_only", "peftzoo")]["status"] == "ok"
    assert rows[("tiny_eeg", "peftzoo")]["status"] == "ok"


def test_listing_without_check_still_works_with_broken_plugins(plugin_dir):
    out = run_python("-m", "registry", env={"PYTHONPATH": str(plugin_dir)})
    assert out.returncode == 0, out.stderr
    assert "needs_dep" in out.stdout and "crashes" in out.stdout
    assert "(DUPLICATE)" in out.stdout


def test_api_reports_per_plugin(plugin_dir):
    reg = Registry(path=[str(plugin_dir), *__import__("sys").path])
    import sys

    sys.path.insert(0, str(plugin_dir))
    try:
        assert reg.get("strategies", "good").description == "a well-behaved plugin strategy"
        with pytest.raises(registry.ComponentLoadError, match="ModuleNotFoundError.*package_that_is_not_installed"):
            reg.get("strategies", "needs_dep")
        with pytest.raises(registry.ComponentLoadError, match="zoo_broken 1.0"):
            reg.get("strategies", "crashes")
        with pytest.raises(registry.DuplicateComponentError, match="peftzoo .*zoo_broken 1.0|zoo_broken 1.0.*peftzoo"):
            reg.get("strategies", "full")
        loaded = reg.load_all("strategies")
        assert "good" in loaded and "head_only" in loaded and "crashes" not in loaded
    finally:
        sys.path.remove(str(plugin_dir))
        for mod in ("zoo_good_mod", "zoo_plain"):
            sys.modules.pop(mod, None)


def test_malformed_entry_point_is_reported(tmp_path):
    make_distribution(tmp_path, "zoo_malformed", {"peftzoo.heads": {"bad": "not a valid : : reference"}}, {})
    out = run_python("-m", "registry", "--kind", "heads", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0
    assert "malformed entry point" in out.stderr and "not a valid" in out.stderr
    assert "linear" in out.stdout


def test_recipe_naming_a_broken_plugin_says_why(plugin_dir, tmp_path):
    import yaml

    from tests.conftest import tiny_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"eeg.strategy": "crashes"})))
    out = run_python(
        "-m", "recipes.run", str(recipe), "--output-dir", str(tmp_path / "runs"), env={"PYTHONPATH": str(plugin_dir)}
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "eeg.strategy.name" in out.stderr and "plugin crashed at import" in out.stderr
    assert not (tmp_path / "runs").exists()
