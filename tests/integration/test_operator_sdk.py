"""The operator through FiftyOne's SDK: immediate, delegated, targets."""

import fiftyone.operators as foo
import pytest
from backendkit import owl_run_params
from fiftyone.operators.delegated import DelegatedOperationService

URI = "@stoplight/autolabel/zero_shot_detect"


def test_immediate_on_current_view(dataset, tiny_checkpoint):
    view = dataset.limit(3)
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": view,
             "params": owl_run_params(tiny_checkpoint, view_target="CURRENT_VIEW")},
    )
    assert result.error is None, result.error
    assert dataset.exists("autolabels").count() == 3
    assert len(dataset.list_runs()) == 1


def test_selected_samples_only(dataset, tiny_checkpoint):
    ids = dataset.skip(2).limit(2).values("id")
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": dataset.view(), "selected": ids,
             "params": owl_run_params(tiny_checkpoint, view_target="SELECTED_SAMPLES", label_field="sel")},
    )
    assert result.error is None, result.error
    assert sorted(dataset.exists("sel").values("id")) == sorted(ids)


def test_defaults_apply_when_called_from_the_sdk(dataset, tiny_checkpoint):
    # no label_field, threshold, overwrite: the documented defaults apply
    params = dict(backend="owlv2", checkpoint=tiny_checkpoint("owlv2"),
                  classes=["person"], device="cpu")
    # the form: execute_operator(uri, ctx=..., params=...)
    result = foo.execute_operator(URI, ctx={"dataset": dataset}, params=params)
    assert result.error is None, result.error
    (key,) = dataset.list_runs()
    config = dataset.get_run_info(key).config
    assert config.label_field == "autolabels"
    assert config.confidence_threshold == 0.2
    assert config.overwrite is False


def test_delegated_execution(dataset, tiny_checkpoint):
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "params": owl_run_params(tiny_checkpoint, delegate=True)},
        request_delegation=True,
    )
    assert result.delegated
    assert not dataset.has_field("autolabels")  # queued, not run
    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    assert dataset.exists("autolabels").count() == len(dataset)
    (key,) = dataset.list_runs()
    assert dataset.get_run_info(key).config.status == "completed"


def test_errors_surface_with_the_parameter_name(dataset, tiny_checkpoint):
    with pytest.raises(Exception, match="confidence_threshold"):
        foo.execute_operator(
            URI, ctx={"dataset": dataset,
                      "params": owl_run_params(tiny_checkpoint, confidence_threshold=3.0)},
        )
    assert not dataset.has_field("autolabels")
