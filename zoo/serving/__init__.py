"""Serving exported models over HTTP: TensorFlow Serving's REST API, batching, a demo page.

- `zoo.serving.repository`: every version of every SavedModel under a base path.
- `zoo.serving.json_tensor`: TensorFlow Serving's JSON tensor format (requests, answers).
- `zoo.serving.batching`: concurrent requests for one signature -> one model call.
- `zoo.serving.app`: the Starlette application (`scripts/serve.py` runs it with uvicorn).
- `zoo.serving.client`: call a served model from Python (`zoo.connect`).

The server side needs the `serve` extra (`pip install -e '.[serve]'`); the client needs
only the standard library and numpy.
"""
