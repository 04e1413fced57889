"""The contract every builder must keep, checked by one helper (cf. keras's testing.TestCase).

`check_builder_contract` asserts: output shape and dtype (float32 probabilities that sum to
1), the exact weight count, a get_config/from_config round-trip giving the same outputs,
a saved `.keras` round-trip, and one fit step that changes the weights with a finite loss.
"""

import keras
import numpy as np


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
    compute = {layer.compute_dtype for layer in model.layers if layer.weights}
    assert compute == {policy.split("_")[1]}, compute

  clone = keras.Model.from_config(model.get_config())
  clone.set_weights(model.get_weights())
  np.testing.assert_allclose(clone(x, training=False), probs, atol=1e-6)

  path = tmp_path / f"{model.name}.keras"
  model.save(path)
  reloaded = keras.saving.load_model(path)
  np.testing.assert_allclose(reloaded(x, training=False), probs, atol=1e-6)

  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
  before = [w.copy() for w in model.get_weights()]
  history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
  assert any(changed)
  return model
