"""The conformance kit as pytest tests: every check, parametrized over every installed component.

Run: `python -m peftzoo_conformance` or `python -m pytest --pyargs peftzoo_conformance`.
A failure's message starts with the name of the check, e.g. `[step_changes_output] strategies 'x': ...`.
"""

from __future__ import annotations

import pytest

import registry
from peftzoo_conformance import dataset_checks, encoder_checks, head_checks, loss_checks, recipe_checks, strategy_checks
from peftzoo_conformance.quick import quick_problems
from peftzoo_conformance.selection import components


def pytest_generate_tests(metafunc) -> None:
    """Parametrize `encoder`, `strategy`, `head`, `loss`, `dataset`, `component` (every kind) and `trainable`
    (the kinds a recipe names) over what is installed."""
    distribution = metafunc.config.getoption("peftzoo_distribution", default=None)
    singular = {
        "encoder": "encoders",
        "strategy": "strategies",
        "head": "heads",
        "loss": "losses",
        "dataset": "datasets",
    }
    for arg, kind in singular.items():
        if arg in metafunc.fixturenames:
            metafunc.parametrize(arg, components(kind, distribution))
    for arg, kinds in (("component", registry.KINDS), ("trainable", tuple(singular.values()))):
        if arg in metafunc.fixturenames:
            pairs = [(kind, name) for kind in kinds for name in components(kind, distribution)]
            metafunc.parametrize(arg, pairs, ids=[f"{k}-{n}" for k, n in pairs])


def not_offered(what: str) -> None:
    pytest.skip(f"{what} not offered (optional hook)")


# -- every kind: import-level (the part list-registry --check runs) ---------------------------------
def test_quick_contract(component):
    kind, name = component
    problems = quick_problems(kind, name, registry.get(kind, name))
    assert not problems, "\n".join(problems)


# -- encoders --------------------------------------------------------------------------------------
def test_encoder_builds_with_defaults(encoder):
    encoder_checks.check_builds_with_defaults(encoder)


def test_encoder_forward_gives_pooled_features(encoder):
    encoder_checks.check_forward_gives_pooled_features(encoder)


def test_encoder_output_dtype_and_device(encoder):
    encoder_checks.check_output_dtype_and_device(encoder)


def test_encoder_input_not_modified(encoder):
    encoder_checks.check_input_not_modified(encoder)


def test_encoder_all_parameters_train(encoder):
    encoder_checks.check_all_parameters_train(encoder)


def test_encoder_no_weight_decay_names(encoder):
    if not encoder_checks.check_no_weight_decay_names(encoder):
        not_offered("no_weight_decay()")


# -- strategies ------------------------------------------------------------------------------------
def test_strategy_report_matches_trainable(strategy):
    strategy_checks.check_report_matches_trainable(strategy)


def test_strategy_step_changes_output(strategy):
    strategy_checks.check_step_changes_output(strategy)


def test_strategy_trainable_tensors_get_gradients(strategy):
    strategy_checks.check_trainable_tensors_get_gradients(strategy)


def test_strategy_step_changes_only_reported(strategy):
    strategy_checks.check_step_changes_only_reported(strategy)


def test_strategy_state_round_trips(strategy):
    if not strategy_checks.check_state_round_trips(strategy):
        not_offered("state_dict()/load_state_dict()")


def test_strategy_merge_preserves_outputs(strategy):
    if not strategy_checks.check_merge_preserves_outputs(strategy):
        not_offered("merge()")


def test_strategy_export_writes_files(strategy, tmp_path):
    if not strategy_checks.check_export_writes_files(strategy, tmp_path):
        not_offered("export()")


def test_strategy_wrapped_modules_declared(strategy):
    if not strategy_checks.check_wrapped_modules_declared(strategy):
        not_offered("wrapped_modules()")


# -- heads, losses, datasets -----------------------------------------------------------------------
def test_head_maps_dimensions_and_trains(head):
    head_checks.check_maps_dimensions_and_trains(head)


def test_loss_finite_scalar(loss):
    loss_checks.check_finite_scalar(loss)


def test_loss_symmetric(loss):
    if not loss_checks.check_symmetric(loss):
        pytest.skip("does not claim symmetry (`symmetric = True`)")


def test_loss_gradient_reaches_both_sides(loss):
    loss_checks.check_gradient_reaches_both_sides(loss)


def test_loss_temperatures_and_batch_sizes(loss):
    loss_checks.check_temperatures_and_batch_sizes(loss)


def test_dataset_arrays(dataset, tmp_path):
    if not dataset_checks.check_arrays(dataset, tmp_path):
        pytest.skip("required options and no `conformance_example(directory)` to build a small instance")


# -- every kind but the quick part: end to end ------------------------------------------------------
def test_trains_in_a_recipe(trainable, tmp_path):
    """Two steps of a tiny recipe with the component, saved, loaded with recipes.load, evaluated."""
    kind, name = trainable
    if not recipe_checks.check_trains_in_a_recipe(name, kind, tmp_path):
        pytest.skip("required options and no `conformance_example(directory)` to build a small instance")
