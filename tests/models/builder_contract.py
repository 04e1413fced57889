"""The contract every builder must keep, checked by one helper (cf. keras's testing.TestCase).

`check_builder_contract` asserts: output shape and dtype (float32 probabilities that sum to
1), the exact weight count, a get_config/from_config round-trip giving the same outputs,
a saved `.keras` round-trip, and one fit step that changes the weights with a finite loss.
Under a mixed policy: float32 variables, the policy's compute dtype everywhere but the
float32 head, float32 loss, loss scaling for float16. `check_export_contract`: whatever
policy built the model, the export is float32 in and float32 out and runs in LiteRT.
"""

import keras
import numpy as np
import tensorflow as tf

from zoo import artifacts, configs, data
from zoo.tasks import classification


def check_builder_contract(builder, *, input_shape, num_classes, expected_params, tmp_path,
                           policy="float32"):
  keras.mixed_precision.set_global_policy(policy)
  model = builder(input_shape=input_shape, num_classes=num_classes, name="under_test")
  assert isinstance(model, keras.Model)
  assert model.name == "under_test"
  assert model.count_params() == expected_params

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, *input_shape)).astype("float32")
  y = rng.integers(0, num_classes, size=(4,))
  probs = model(x, training=False)
  assert tuple(probs.shape) == (4, num_classes)
  assert probs.dtype == "float32"  # Under every policy: the last activation is float32.
  np.testing.assert_allclose(np.sum(np.asarray(probs), axis=-1), 1.0, atol=1e-3)
  for v in model.weights:
    assert v.dtype == "float32", v.path  # Variables stay float32 under mixed policies.
  if policy != "float32":
    # Every layer with weights computes in the policy's dtype, except the float32 head.
    compute = {layer.name: layer.compute_dtype for layer in model.layers if layer.weights}
    assert compute.pop("logits") == "float32"
    assert set(compute.values()) == {policy.split("_")[1]}, compute
    assert model.get_layer("probabilities").compute_dtype == "float32"

  clone = keras.Model.from_config(model.get_config())
  clone.set_weights(model.get_weights())
  np.testing.assert_allclose(clone(x, training=False), probs, atol=1e-6)

  path = tmp_path / f"{model.name}.keras"
  model.save(path)
  reloaded = keras.saving.load_model(path)
  np.testing.assert_allclose(reloaded(x, training=False), probs, atol=1e-6)

  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
  # float16 gradients underflow without loss scaling; compile() adds it for this policy.
  assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (
      policy == "mixed_float16")
  assert model.compute_loss(x=x, y=y, y_pred=probs).dtype == "float32"
  before = [w.copy() for w in model.get_weights()]
  history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
  assert any(changed)
  return model


def check_export_contract(model, build, *, input_shape, tmp_path, atol):
  """Exports `model` as the exporter does (float32 twin, SavedModel, TFLite float32) and
  checks dtypes and outputs against `model` itself within `atol`."""
  rng = np.random.default_rng(1)
  pixels = rng.integers(0, 256, size=(4, *input_shape)).astype("uint8")
  expected = np.asarray(model(pixels.astype("float32") / 255.0, training=False))
  twin = artifacts.float32_twin(build, model)
  assert {layer.compute_dtype for layer in twin.layers} == {"float32"}

  saved = tmp_path / "saved_model"
  info = data.DatasetInfo(name="mnist", image_shape=tuple(input_shape), num_classes=10,
                          class_names=tuple(str(i) for i in range(10)), num_examples={})
  config = configs.TrainConfig(model="builder_under_test")  # The task's knobs at defaults.
  classification.TASK.write_saved_model(twin, config, info, str(saved))
  serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
  out = serve(images=tf.constant(pixels))
  assert out["probabilities"].dtype == tf.float32
  np.testing.assert_allclose(out["probabilities"], expected, atol=atol)

  source = tmp_path / "tflite_source"
  artifacts.write_tflite_source(
      lambda images: {"probabilities": twin(data.normalize_images(images), training=False)},
      [tf.TensorSpec([None, *input_shape], tf.uint8, name="images")], str(source))
  from ai_edge_litert import interpreter as litert
  interpreter = litert.Interpreter(
      model_content=artifacts.convert_tflite(str(source), "float32"),
      experimental_op_resolver_type=litert.OpResolverType.BUILTIN)
  interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], pixels.shape)
  interpreter.allocate_tensors()
  (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
  # uint8 pixels in, as every exported file takes them; float32 probabilities out.
  assert inp["dtype"] == np.uint8 and outp["dtype"] == np.float32
  interpreter.set_tensor(inp["index"], pixels)
  interpreter.invoke()
  np.testing.assert_allclose(interpreter.get_tensor(outp["index"]), expected, atol=atol)
