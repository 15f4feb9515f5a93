"""The conformance kit (peftzoo_conformance): passes on every built-in and example component, and fails
each planted broken plugin (examples/broken_plugins) with a message naming the broken check.

Both run the kit as a plugin author would: `python -m peftzoo_conformance` in a fresh interpreter
with the plugin distribution pip-installed (from a copy, entry points only) on the path.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT, run_python
from tests.test_plugin_examples import EXAMPLES, pip_install_copy

BROKEN = ROOT / "examples" / "broken_plugins"

# (kit test, component, check named in the failure): exactly these fail, nothing else.
PLANTED = [
    ("test_strategy_report_matches_trainable", "broken_unreported", "report_matches_trainable"),
    ("test_strategy_step_changes_only_reported", "broken_unreported", "step_changes_only_reported"),
    ("test_strategy_step_changes_output", "broken_never_called", "step_changes_output"),
    ("test_strategy_state_round_trips", "broken_forgetful_state", "state_round_trips"),
    ("test_strategy_merge_preserves_outputs", "broken_merge", "merge_preserves_outputs"),
    ("test_quick_contract", "strategies-broken_open_config", "config_refuses_unknown_keys"),
]


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    return pip_install_copy(BROKEN, tmp_path_factory.mktemp("broken"))


@pytest.fixture(scope="module")
def examples_site(tmp_path_factory):
    return pip_install_copy(EXAMPLES, tmp_path_factory.mktemp("examples"))


def outcomes(stdout: str) -> dict[str, str]:
    """'test_x[param]' -> PASSED / FAILED / SKIPPED from pytest -v output."""
    found = re.findall(r"test_conformance\.py::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", stdout)
    return dict(found)


def test_kit_passes_on_every_builtin_and_example(examples_site):
    out = run_python("-m", "peftzoo_conformance", "-v", env={"PYTHONPATH": str(examples_site)}, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:]
    results = outcomes(out.stdout)
    assert results and not [t for t, r in results.items() if r in ("FAILED", "ERROR")]
    # the examples ran, every hook of vera included; built-ins of every kind too
    for test in ("test_strategy_state_round_trips[vera]", "test_strategy_merge_preserves_outputs[vera]",
                 "test_strategy_export_writes_files[vera]", "test_strategy_wrapped_modules_declared[vera]",
                 "test_strategy_step_changes_output[vera]", "test_encoder_forward_gives_pooled_features[eegnet]",
                 "test_encoder_no_weight_decay_names[eegnet]", "test_head_maps_dimensions_and_trains[glu]",
                 "test_loss_symmetric[dcl]", "test_loss_gradient_reaches_both_sides[dcl]", "test_dataset_arrays[npz_folder]",
                 "test_strategy_step_changes_output[lora]", "test_encoder_forward_gives_pooled_features[video_swin]",
                 "test_loss_symmetric[clip]", "test_dataset_arrays[arrays]", "test_head_maps_dimensions_and_trains[mlp]"):
        assert results.get(test) == "PASSED", (test, results.get(test))


def test_kit_fails_each_planted_broken_plugin_naming_the_check(broken_site):
    out = run_python("-m", "peftzoo_conformance", "-v", "--peftzoo-distribution", "peftzoo-broken-plugins",
                     env={"PYTHONPATH": str(broken_site)})
    assert out.returncode == 1, out.stdout[-4000:]
    results = outcomes(out.stdout)
    failed = {t for t, r in results.items() if r == "FAILED"}
    assert failed == {f"{test}[{name}]" for test, name, _ in PLANTED}, sorted(failed)
    for _, name, check in PLANTED:
        component = name.split("-")[-1]
        assert f"[{check}] strategies {component!r}" in out.stdout, (check, component)
    # only the one distribution was checked (kinds it has none of show as one skipped, empty parameter set)
    assert all("broken_" in t for t, r in results.items() if r != "SKIPPED"), sorted(results)[:5]


def test_list_registry_check_runs_the_quick_part_of_the_kit(broken_site):
    out = run_python("-m", "registry", "--json", "--check", "--kind", "strategies", env={"PYTHONPATH": str(broken_site)})
    assert out.returncode == 1
    rows = {r["name"]: r["status"] for r in json.loads(out.stdout)}
    assert rows["broken_open_config"].startswith("error: ConformanceError: [config_refuses_unknown_keys]")
    assert "extra='forbid'" in rows["broken_open_config"]
    # flaws that need a build and a training step are the full kit's, not the quick check's
    assert rows["broken_merge"] == rows["lora"] == "ok"


def test_quick_checks_in_process():
    """The quick checks on classes made here: each problem named, a conforming class passes."""
    from pydantic import ConfigDict

    from peftzoo_conformance.quick import quick_problems
    from registry.component import ComponentConfig

    class Good:
        description = "a head"
        Config = ComponentConfig

        @classmethod
        def from_config(cls, config, **context):
            return cls()

    class Open(ComponentConfig):
        model_config = ConfigDict(extra="ignore")

    class Bad:
        Config = Open
        modality = "audio"

        @classmethod
        def from_config(cls, config, **context):
            return cls()

    assert quick_problems("heads", "good", Good) == []
    problems = " ".join(quick_problems("encoders", "bad", Bad))
    for check in ("config_refuses_unknown_keys", "config_has_description", "kind_attributes"):
        assert f"[{check}] encoders 'bad'" in problems
    assert "'audio'" in problems
