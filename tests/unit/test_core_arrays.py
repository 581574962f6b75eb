"""Pure array functions: ontology, box conversions, post-processing."""

import numpy as np
import pytest

from stoplight.plugins.autolabel import boxes as B
from stoplight.plugins.autolabel.backends import Predictions
from stoplight.plugins.autolabel.detections import detections_doc, postprocess
from stoplight.plugins.autolabel.ontology import Ontology


def test_classes_are_their_own_prompts():
    o = Ontology.from_params(classes=["person", "bus"])
    assert o.prompts == ("person", "bus")
    assert o.classes == ("person", "bus")
    assert o.prompt_to_class.tolist() == [0, 1]


def test_ontology_maps_several_prompts_to_one_class():
    o = Ontology.from_params(ontology={"a man": "person", "a woman": "person", "a bus": "vehicle"})
    assert o.prompts == ("a man", "a woman", "a bus")
    assert o.classes == ("person", "vehicle")
    scores = np.array([[0.1, 0.7, 0.2], [0.3, 0.0, 0.9]])
    np.testing.assert_allclose(o.class_scores(scores), [[0.7, 0.2], [0.3, 0.9]])
    assert o.to_dict() == {"a man": "person", "a woman": "person", "a bus": "vehicle"}


def test_ontology_accepts_json_text_and_comma_separated_classes():
    assert Ontology.from_params(ontology='{"a cat": "cat"}').classes == ("cat",)
    assert Ontology.from_params(classes="cat, dog").classes == ("cat", "dog")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "Give either"),
        (dict(classes=[]), "Give either"),
        (dict(classes=["a"], ontology={"b": "b"}), "not both"),
        (dict(classes=["cat", "  "]), "classes"),
        (dict(ontology="{not json"), "ontology"),
        (dict(ontology='["a"]'), "JSON object"),
    ],
)
def test_bad_prompts_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Ontology.from_params(**kwargs)


def test_duplicate_prompts_are_scored_once():
    o = Ontology.from_params(classes=["cat", "cat", "dog"])
    assert o.prompts == ("cat", "dog")


def test_cxcywh_to_xyxy():
    np.testing.assert_allclose(B.cxcywh_to_xyxy([[10, 20, 4, 6]]), [[8, 17, 12, 23]])


def test_unletterbox_inverts_resize_and_padding():
    # a 1280x720 image letterboxed into 640x640: gain 0.5, 140 px on top
    original = np.array([[100.0, 50.0, 300.0, 700.0]])
    boxed = original * 0.5 + np.array([0, 140, 0, 140])
    np.testing.assert_allclose(B.unletterbox(boxed, 0.5, (0, 140)), original)


def test_xyxy_to_fiftyone_normalizes_and_clips():
    out = B.xyxy_to_fiftyone([[-10, 10, 50, 120], [20, 30, 60, 90]], width=100, height=100)
    np.testing.assert_allclose(out, [[0.0, 0.1, 0.5, 0.9], [0.2, 0.3, 0.4, 0.6]])


def test_nms_class_aware_vs_agnostic():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert sorted(B.nms(boxes, scores, 0.5, classes=np.array([0, 1, 0])).tolist()) == [0, 1, 2]
    assert sorted(B.nms(boxes, scores, 0.5).tolist()) == [0, 2]


def _onto():
    return Ontology.from_params(ontology={"man": "person", "woman": "person", "bus": "bus"})


def test_postprocess_maps_prompts_to_classes_thresholds_and_normalizes():
    pred = Predictions(
        boxes=[[0, 0, 100, 50], [100, 100, 200, 200], [0, 0, 10, 10]],
        prompt_scores=[[0.1, 0.6, 0.3], [0.05, 0.1, 0.8], [0.1, 0.1, 0.1]],
    )
    d = postprocess(pred, _onto(), width=200, height=200, confidence_threshold=0.2)
    assert d.labels.tolist() == [1, 0]  # sorted by score: bus 0.8, person 0.6
    np.testing.assert_allclose(d.confidence, [0.8, 0.6])
    np.testing.assert_allclose(d.boxes, [[0.5, 0.5, 0.5, 0.5], [0, 0, 0.5, 0.25]])
    np.testing.assert_allclose(d.class_scores, [[0.1, 0.8], [0.6, 0.3]])


def test_postprocess_drops_nan_and_empty_boxes():
    pred = Predictions(
        boxes=[[0, 0, 10, 10], [5, 5, 5, 20], [300, 300, 400, 400], [0, 0, np.nan, 5]],
        prompt_scores=[[np.nan, 0, 0], [0.9, 0, 0], [0.9, 0, 0], [0.9, 0, 0]],
    )
    d = postprocess(pred, _onto(), 100, 100, 0.0)
    assert len(d.labels) == 0


def test_class_agnostic_nms_suppresses_across_classes():
    pred = Predictions(
        boxes=[[0, 0, 100, 100], [2, 2, 100, 100]],
        prompt_scores=[[0.9, 0, 0], [0, 0, 0.8]],
    )
    assert len(postprocess(pred, _onto(), 200, 200, 0.2).labels) == 2
    assert len(postprocess(pred, _onto(), 200, 200, 0.2, class_agnostic_nms=True).labels) == 1


def to_detections(dets, onto):
    import fiftyone as fo

    return fo.Detections.from_dict(detections_doc(dets, onto))


def test_detections_doc_is_a_valid_fiftyone_document_with_class_and_scores():
    pred = Predictions(boxes=[[0, 0, 50, 50]], prompt_scores=[[0.2, 0.7, 0.1]])
    dets = to_detections(postprocess(pred, _onto(), 100, 100, 0.2), _onto())
    (d,) = dets.detections
    assert d.label == "person" and d.confidence == pytest.approx(0.7)
    assert d.bounding_box == pytest.approx([0, 0, 0.5, 0.5])
    assert d["class_scores"] == pytest.approx([0.7, 0.1])


def test_top_score_only_backends_write_no_score_vector():
    pred = Predictions(boxes=[[0, 0, 50, 50]], prompt_scores=[[0, 0.7, 0]], has_score_vector=False)
    (d,) = to_detections(postprocess(pred, _onto(), 100, 100, 0.2), _onto()).detections
    assert "class_scores" not in d.to_dict()


def test_predictions_validate_shapes():
    with pytest.raises(ValueError, match="prompt_scores"):
        Predictions(boxes=[[0, 0, 1, 1]], prompt_scores=[0.5])
