"""The package's floors: `zoo/`'s imports, read with `ast`, point down only.

No import circle anywhere in `zoo/`; no function-level import of a `zoo` module except the
few that keep a light module free of TensorFlow (listed below with why); the apps' floor
(`zoo.runtime`) and the artifacts floor import no task, model or door.
"""

import ast
import pathlib

import pytest

ZOO = pathlib.Path(__file__).resolve().parents[1] / "zoo"

# Deferred `zoo` imports that are not there to dodge a circle.
ALLOWED_DEFERRED = {
    # `import zoo` must not import TensorFlow: scripts import zoo.cli first to quiet it.
    ("zoo", "zoo.loading"), ("zoo", "zoo.serving.client"),
    # The config dataclass stays TensorFlow-free; only validate() needs the choices.
    ("zoo.configs.base", "zoo.distribute"), ("zoo.configs.base", "zoo.precision"),
    # The `serve` extra is optional: zoo-serve says which package is missing, and how to
    # install it, instead of an ImportError traceback (imported in a try block).
    ("zoo.commands.serve", "zoo.serving.config"), ("zoo.commands.serve", "zoo.serving.metrics"),
    ("zoo.commands.serve", "zoo.serving.runner"),
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ZOO.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, modules: set[str]):
  """`(imported zoo module, deferred?)` for every import in the file."""
  tree = ast.parse(path.read_text())
  top_level = {id(node) for node in tree.body}
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      # `from zoo import data` imports the module zoo.data; `from zoo.x import f` zoo.x.
      names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
               else node.module for a in node.names]
    for name in names:
      if name.split(".")[0] == "zoo" and name in modules:
        yield name, id(node) not in top_level


def _graph():
  modules = {_module_name(p) for p in ZOO.rglob("*.py")}
  edges, deferred = {}, set()
  for path in ZOO.rglob("*.py"):
    source = _module_name(path)
    for target, is_deferred in _imports(path, modules):
      if target == source:
        continue
      if is_deferred:
        deferred.add((source, target))
      else:
        edges.setdefault(source, set()).add(target)
        # Importing zoo.a.b runs zoo/a/__init__.py first.
        parent = target.rpartition(".")[0]
        while parent and parent != source and not source.startswith(parent + "."):
          edges[source].add(parent)
          parent = parent.rpartition(".")[0]
  return modules, edges, deferred


def _cycle(edges):
  """One import circle as a list of modules, or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(edges.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(edges):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_import_circle_in_zoo():
  _, edges, _ = _graph()
  assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_the_cycle_finder_finds_a_circle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_deferred_zoo_import_dodges_a_circle():
  _, _, deferred = _graph()
  assert deferred <= ALLOWED_DEFERRED, sorted(deferred - ALLOWED_DEFERRED)


def _reachable(edges, start):
  seen, todo = set(), [start]
  while todo:
    for nxt in edges.get(todo.pop(), ()):
      if nxt not in seen:
        seen.add(nxt)
        todo.append(nxt)
  return seen


@pytest.mark.parametrize("floor, forbidden", [
    # The apps' floor: cards and backends, no Keras model code, no task, no door.
    ("zoo.runtime", ("zoo.models", "zoo.tasks", "zoo.artifacts", "zoo.export",
                     "zoo.train", "zoo.evaluate", "zoo.loading", "zoo.data")),
    # The artifacts floor writes files; it knows no task and no door.
    ("zoo.artifacts", ("zoo.tasks", "zoo.export", "zoo.train", "zoo.evaluate",
                       "zoo.loading")),
    # Tasks sit below every door.
    ("zoo.tasks", ("zoo.export", "zoo.train", "zoo.evaluate", "zoo.loading")),
])
def test_each_floor_imports_only_the_floors_below(floor, forbidden):
  _, edges, _ = _graph()
  reached = _reachable(edges, floor)
  assert not [m for m in reached if m.startswith(forbidden)], sorted(reached)
