"""Every bundled recipe validates and composes (real encoders included) against its own data."""

from __future__ import annotations

import pytest

from recipes import overrides, schema
from recipes.compose import compose


@pytest.mark.parametrize("name", schema.bundled_names())
def test_bundled_recipe_composes(reg, name):
    raw = overrides.apply(schema.read_yaml(schema.resolve(name)), ["data.n=8"])
    recipe = schema.validate(raw, reg, source=name)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    model = compose(recipe, data, reg)
    assert model.eeg.encoder.feature_dim > 0 and model.video.encoder.feature_dim > 0
    assert schema.dump(recipe).startswith("name: ")
