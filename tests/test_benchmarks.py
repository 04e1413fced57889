"""The arithmetic and file handling behind BENCHMARKS.md."""

from zoo import benchmarks


def test_seconds_to_accuracy_counts_training_time_up_to_the_first_epoch_at_target():
  assert benchmarks.seconds_to_accuracy([10, 5, 7, 3], [0.97, 0.985, 0.991, 0.995], 0.99) == (22, 3)
  assert benchmarks.seconds_to_accuracy([10, 5], [0.97, 0.98], 0.99) == (None, None)
  assert benchmarks.seconds_to_accuracy([4.0], [0.99], 0.99) == (4.0, 1)


def test_write_section_replaces_its_own_block_and_keeps_the_others(tmp_path):
  path = str(tmp_path / "BENCHMARKS.md")
  benchmarks.write_section(path, "A", "first\n")
  benchmarks.write_section(path, "B", "other\n")
  benchmarks.write_section(path, "A", "second\n")
  text = open(path).read()
  assert "second" in text and "first" not in text and "other" in text
  assert text.count("## A") == 1 and text.index("## A") < text.index("## B")
