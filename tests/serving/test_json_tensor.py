"""TensorFlow Serving's JSON tensor format, without a server or a model."""

import json

import numpy as np
import pytest

from zoo.serving import json_tensor as jt

IMAGES = jt.TensorSpec("DT_UINT8", np.dtype(np.uint8), (None, 2, 2, 1))
SEED = jt.TensorSpec("DT_INT64", np.dtype(np.int64), (None,))
LABELS = jt.TensorSpec("DT_INT64", np.dtype(np.int64), (None,))
LATENT = jt.TensorSpec("DT_FLOAT", np.dtype(np.float32), (None, 3))
BYTES = jt.TensorSpec("DT_STRING", np.dtype(object), (None,))


def test_row_format_stacks_bare_values_for_one_input():
  request = jt.parse_predict({"instances": [[[[1], [2]], [[3], [4]]]] * 3}, {"images": IMAGES})
  assert request.format == "row" and request.signature_name == "serving_default"
  assert request.inputs["images"].dtype == np.uint8 and request.inputs["images"].shape == (3, 2, 2, 1)


def test_row_format_objects_for_several_inputs_and_columnar_format():
  specs = {"seed": SEED, "labels": LABELS}
  rows = jt.parse_predict({"signature_name": "generate",
                           "instances": [{"seed": 1, "labels": 7}, {"seed": 2, "labels": 3}]},
                          specs)
  columns = jt.parse_predict({"inputs": {"seed": [1, 2], "labels": [7, 3]}}, specs)
  assert rows.signature_name == "generate" and columns.format == "columnar"
  for request in (rows, columns):
    assert request.inputs["seed"].tolist() == [1, 2] and request.inputs["labels"].tolist() == [7, 3]


def test_floats_accept_integers_and_refuse_overflow():
  request = jt.parse_predict({"inputs": [[1, 2.5, -3]]}, {"latent": LATENT})
  assert request.inputs["latent"].dtype == np.float32
  with pytest.raises(jt.RequestError, match="without loss of precision"):
    jt.parse_predict({"inputs": [[1e39, 0, 0]]}, {"latent": LATENT})


def test_b64_strings_are_decoded():
  request = jt.parse_predict({"instances": [{"b64": "AP8="}, "text"]}, {"image_bytes": BYTES})
  assert request.inputs["image_bytes"].tolist() == [b"\x00\xff", b"text"]


@pytest.mark.parametrize("body,message", [
    ({"instances": [1, 2], "inputs": [1]}, "only one of"),
    ({"instances": {"seed": 1}}, "list/array"),
    ({"instances": [{"seed": 1}]}, "keys must be equal to: labels,seed"),
    ({"instances": [1, 2]}, "expecting list of objects"),
    ({"inputs": [1, 2]}, "expecting an object"),
    ({"inputs": {"seed": [1, 2], "labels": [1]}}, "same batch size"),
    ({"inputs": {"seed": [True], "labels": [1]}}, "true/false"),
    ({"inputs": {"seed": ["1"], "labels": [1]}}, "strings where"),
    ({"inputs": {"seed": [2 ** 70], "labels": [1]}}, "beyond 64 bits"),
    ({"inputs": {"seed": [None], "labels": [1]}}, "Type: Null"),
    ({"instances": [{"seed": 1, "labels": 2}, [1]]}, "Expecting object but got list at item 1"),
])
def test_malformed_requests_say_what_was_expected(body, message):
  with pytest.raises(jt.RequestError, match=message.replace("(", r"\(")):
    jt.parse_predict(body, {"seed": SEED, "labels": LABELS})


def test_outputs_encode_per_format_with_shortest_floats_and_non_finite_values():
  outputs = {"p": np.array([[0.1, np.nan], [np.inf, -np.inf]], np.float32),
             "c": np.array([1, 2], np.int64)}
  rows = jt.encode_outputs(outputs, "row")
  assert rows["predictions"][1] == {"c": 2, "p": [float("inf"), float("-inf")]}
  text = jt.dumps(rows).decode()
  assert '"p":[0.1,NaN]' in text and "Infinity" in text
  assert json.loads(text)["predictions"][0]["c"] == 1
  assert jt.encode_outputs({"images": np.zeros((2, 1), np.uint8)}, "columnar") == {
      "outputs": [[0], [0]]}
  assert jt.encode_outputs({"images": np.zeros((2, 1), np.uint8)}, "row") == {
      "predictions": [[0], [0]]}


def test_parse_body_errors():
  for body, message in [(b"", "empty"), (b"{", "JSON Parse error"), (b"\xff", "UTF-8"),
                        (b"3", "Is not object"), (b"[" * 100000, "JSON Parse error")]:
    with pytest.raises(jt.RequestError, match=message):
      jt.parse_body(body)
