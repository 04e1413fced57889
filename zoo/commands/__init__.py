"""The zoo's commands: `zoo-train`, `zoo-export`, `zoo-predict`, `zoo-generate`,
`zoo-evaluate`, `zoo-serve`, `zoo-tensorboard`, `zoo-make-image-folder` and
`zoo-make-coco-digits` once installed (`setup.cfg`'s console scripts), and the same with
`python scripts/<name>.py` in a checkout. Each module parses its absl flags and calls the
library; `COMMANDS` maps a command's name to its module (`zoo <name> ...` runs it too).

Nothing is imported here: a command module imports `zoo.cli` first, which quiets
TensorFlow's start-up before anything loads it.
"""

COMMANDS = {
    "train": "zoo.commands.train",
    "export": "zoo.commands.export",
    "predict": "zoo.commands.predict",
    "generate": "zoo.commands.generate",
    "evaluate": "zoo.commands.evaluate",
    "serve": "zoo.commands.serve",
    "tensorboard": "zoo.commands.tensorboard",
    "make-image-folder": "zoo.commands.make_image_folder",
    "make-coco-digits": "zoo.commands.make_coco_digits",
}
