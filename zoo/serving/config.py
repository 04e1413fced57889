"""Which models a server serves: TensorFlow Serving's `--model_config_file`, its
`--model_name`/`--model_base_path`, or the zoo's folder of models.

  sources = from_config_file("models.config")      # ModelServerConfig, text format
  sources = [single_model("mnist_cnn", "saved_models/mnist_cnn")]
  sources = repository.sources_under("saved_models")   # every <name>/ under a folder

A config file is TensorFlow Serving's own (`tensorflow_serving/config/model_server_config
.proto`), parsed with the `tensorflow-serving-api` wheel's message and protobuf's
`text_format`:

  model_config_list {
    config {
      name: "mnist_cnn"
      base_path: "/srv/models/mnist_cnn"
      model_platform: "tensorflow"
      model_version_policy { latest { num_versions: 2 } }   # or all {}, specific {...}
      version_labels { key: "stable" value: 3 }
    }
  }

Relative base paths are taken from the working directory, as TensorFlow Serving does.
"""

from __future__ import annotations

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from zoo import errors
from zoo.serving.repository import ModelSource, VersionPolicy


def policy_from_proto(proto) -> VersionPolicy:
  """A `VersionPolicy` from a `ServableVersionPolicy` message (unset: latest 1)."""
  which = proto.WhichOneof("policy_choice")
  if which == "all":
    return VersionPolicy("all")
  if which == "specific":
    return VersionPolicy("specific", versions=tuple(proto.specific.versions))
  if which == "latest":
    return VersionPolicy("latest", num_versions=proto.latest.num_versions or 1)
  return VersionPolicy()


def from_config_file(path: str) -> list:
  """The models of a `ModelServerConfig` text file."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise errors.NotFoundError(f"Invalid value for --model_config_file: cannot read "
                               f"{path!r} ({e.strerror}).") from None
  config = model_server_config_pb2.ModelServerConfig()
  try:
    text_format.Parse(text, config)
  except text_format.ParseError as e:
    raise errors.InvalidValueError(f"Invalid value for --model_config_file: {path!r} is not "
                                   f"a ModelServerConfig in text format: {e}") from None
  if config.WhichOneof("config") != "model_config_list":
    raise errors.InvalidValueError(f"Invalid value for --model_config_file: {path!r} has no "
                                   "model_config_list (custom_model_config is not supported).")
  sources, seen = [], set()
  for model in config.model_config_list.config:
    where = f"model {model.name!r} of {path!r}"
    if not model.name or not model.base_path:
      raise errors.InvalidValueError(f"Invalid value for --model_config_file: every config "
                                     f"needs a name and a base_path ({where}).")
    if model.name in seen:
      raise errors.InvalidValueError(f"Invalid value for --model_config_file: model "
                                     f"{model.name!r} is configured twice in {path!r}.")
    seen.add(model.name)
    if model.model_platform not in ("", "tensorflow"):
      raise errors.InvalidValueError(
          f"Invalid value for model_platform of {where}: {model.model_platform!r}; this "
          "server serves TensorFlow SavedModels ('tensorflow').")
    sources.append(ModelSource(model.name, model.base_path,
                               policy_from_proto(model.model_version_policy),
                               dict(model.version_labels)))
  if not sources:
    raise errors.InvalidValueError(f"Invalid value for --model_config_file: {path!r} "
                                   "configures no model.")
  return sources


def single_model(name: str, base_path: str, labels=None) -> ModelSource:
  """`--model_name` and `--model_base_path` as TensorFlow Serving takes them: one model
  whose versions are the integer folders of `base_path`, the latest one served."""
  return ModelSource(name, base_path, VersionPolicy(), dict(labels or {}))
