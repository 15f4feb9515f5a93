"""The callback machinery (peftzoo_engine/callbacks.py, context.py) without training: hook order, the base
class's do-nothing hooks left out of the calls, checkpoint state by key, and recipe validation of
train.callbacks. Training with a plugin callback, its state across a resume: tests/test_plugin_examples.py."""

from __future__ import annotations

import pytest

from peftzoo_engine.callbacks import Callback, Callbacks
from recipes import schema
from recipes.errors import RecipeError
from tests.conftest import tiny_recipe


class Recorder(Callback):
    def __init__(self, name, calls):
        self.name, self.calls, self.seen = name, calls, 0

    def on_step_end(self, ctx, loss, finite):
        self.seen += 1
        self.calls.append((self.name, "step", loss))

    def on_run_end(self, ctx, status):
        self.calls.append((self.name, "end", status))

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


class Plain:
    """Not a Callback subclass: hooks are looked up by name."""

    def __init__(self, calls):
        self.calls = calls

    def on_run_end(self, ctx, status):
        self.calls.append(("plain", "end", status))


def test_hooks_run_in_list_order_and_base_hooks_cost_no_call():
    calls = []
    callbacks = Callbacks([Recorder("a", calls), Plain(calls), Recorder("b", calls)])
    assert [m.__self__.name for m in callbacks.step_hooks] == ["a", "b"]  # Plain has no on_step_end
    assert callbacks._by_hook["on_epoch_end"] == []  # Recorder keeps the base class's do-nothing on_epoch_end
    for hook in callbacks.step_hooks:
        hook(None, 0.5, True)
    callbacks.call("on_run_end", None, "completed")
    assert calls == [
        ("a", "step", 0.5),
        ("b", "step", 0.5),
        ("a", "end", "completed"),
        ("plain", "end", "completed"),
        ("b", "end", "completed"),
    ]


def test_state_goes_back_to_the_callback_of_the_same_key(caplog):
    calls = []
    saved = Callbacks(
        [Recorder("a", calls), Recorder("b", calls)], keys=["train.callbacks[0]:a", "train.callbacks[1]:b"]
    )
    saved.items[0].seen, saved.items[1].seen = 3, 7
    state = saved.state_dict()
    assert state == {"train.callbacks[0]:a": {"seen": 3}, "train.callbacks[1]:b": {"seen": 7}}
    fresh = Callbacks(
        [Recorder("b", calls), Recorder("c", calls)], keys=["train.callbacks[1]:b", "train.callbacks[2]:c"]
    )
    fresh.load_state_dict(state)
    assert [c.seen for c in fresh.items] == [7, 0]
    assert "callback train.callbacks[2]:c has no state in the checkpoint; it starts fresh" in caplog.text
    with pytest.raises(ValueError, match="share a checkpoint key"):
        Callbacks([Plain(calls), Plain(calls)], keys=["x", "x"])


def test_train_callbacks_are_validated_like_components(reg):
    recipe = schema.validate(tiny_recipe(**{"train.callbacks": ["tensorboard", {"name": "tensorboard"}]}), reg)
    assert [c.name for c in recipe.train.callbacks] == ["tensorboard", "tensorboard"]
    assert schema.validate(tiny_recipe(), reg).train.callbacks == []
    with pytest.raises(
        RecipeError,
        match=r"train.callbacks.0.name: 'tensorbord' is not a training callback; "
        r"did you mean 'tensorboard'\?",
    ):
        schema.validate(tiny_recipe(**{"train.callbacks": ["tensorbord"]}), reg)
    with pytest.raises(RecipeError, match=r"train.callbacks.0.every: unknown key"):
        schema.validate(tiny_recipe(**{"train.callbacks": [{"name": "tensorboard", "every": 2}]}), reg)
