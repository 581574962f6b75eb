"""``common/operator_params``: how operators read a request's parameters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stoplight.plugins.common.operator_params import (
    default_of,
    defaults_of,
    is_cleared,
    param_of,
    params_from,
)


def core(collection, label_field: str = "autolabels", iou: float = 0.5, overwrite: bool = False,
         device: str | None = None, diversity_attr: str | None = "embedding", record_run: bool = True):
    """A core function: a collection, then keyword arguments with defaults."""


def takes_kwargs(collection, label_field: str = "autolabels", **credentials):
    """A core function that takes any keyword (credentials)."""


def ctx(**params):
    return SimpleNamespace(params=params)


def test_defaults_come_from_the_signature():
    assert default_of(core, "iou") == 0.5
    assert defaults_of(core) == dict(label_field="autolabels", iou=0.5, overwrite=False, device=None,
                                     diversity_attr="embedding", record_run=True)
    with pytest.raises(TypeError, match="'collection'"):
        default_of(core, "collection")
    with pytest.raises(TypeError, match="'nope'"):
        default_of(core, "nope")


@pytest.mark.parametrize("value", [None, "", [], {}, ()])
def test_a_missing_or_cleared_value_is_the_default(value):
    assert is_cleared(value)
    assert param_of(ctx(label_field=value), core, "label_field") == "autolabels"
    assert param_of(ctx(), core, "label_field") == "autolabels"


@pytest.mark.parametrize("value", [0, 0.0, False, "x", ["a"]])
def test_other_values_pass_as_they_are(value):
    assert not is_cleared(value)
    assert param_of(ctx(iou=value), core, "iou") is value


def test_a_switch_is_not_coerced_unless_asked():
    # "false" must reach the core function's type check, never read as True
    assert param_of(ctx(overwrite="false"), core, "overwrite") == "false"
    kwargs = params_from(ctx(overwrite="yes"), core, ("overwrite",), flags=("overwrite",))
    assert kwargs == {"overwrite": True}
    with pytest.raises(TypeError, match="flags"):
        params_from(ctx(), core, ("iou",), flags=("overwrite",))


def test_cleared_can_mean_off_while_missing_means_the_default():
    assert param_of(ctx(diversity_attr=""), core, "diversity_attr", cleared=None) is None
    assert param_of(ctx(diversity_attr=None), core, "diversity_attr", cleared=None) is None
    assert param_of(ctx(), core, "diversity_attr", cleared=None) == "embedding"


def test_a_request_key_may_be_named_differently():
    assert param_of(ctx(train_split="fit"), core, "label_field", key="train_split") == "fit"
    assert param_of(ctx(label_field="ignored"), core, "label_field", key="train_split") == "autolabels"


def test_only_the_named_keys_are_read_and_overrides_win():
    request = ctx(label_field="mine", iou=0.7, record_run=False, device="cuda", unknown=1)
    kwargs = params_from(request, core, ("label_field", "iou", "device"), device="cpu")
    # record_run is a parameter of the core function, but not the request's to set
    assert kwargs == {"label_field": "mine", "iou": 0.7, "device": "cpu"}


def test_mistakes_in_the_operator_are_found():
    with pytest.raises(TypeError, match="'nope'"):
        params_from(ctx(), core, ("nope",))
    with pytest.raises(TypeError, match="takes no parameter"):
        params_from(ctx(), core, (), user="me")
    assert params_from(ctx(), takes_kwargs, ("label_field",), api_key="server's") == {
        "label_field": "autolabels", "api_key": "server's",
    }
