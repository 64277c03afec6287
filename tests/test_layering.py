"""The package layering of docs/architecture.md: a module imports only from lower layers or
its own package, so there are no upward or circular imports between packages."""
import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Lower numbers are lower layers. Packages on one layer do not import each other.
LAYERS = {
    'config': 0, 'console': 0, 'fileio': 0, 'cxx': 0,
    'data': 1,
    'symbols': 2,
    'essh': 3, 'evaluation': 3,
    'inference': 4,
    'training': 5,      # distillation runs a teacher through inference's predictor
}
CLIS = ('train.py', 'test.py', 'evaluate.py')


def package_modules(package):
    """Dotted names of every module of a package (or the top-level module itself)."""
    if os.path.isfile(os.path.join(ROOT, package + '.py')):
        return [package]
    names = []
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in sorted(files):
            if name.endswith('.py'):
                relative = os.path.relpath(os.path.join(folder, name), ROOT)[:-3]
                names.append(relative.replace(os.sep, '.').replace('.__init__', ''))
    return names


def imported_packages(path, module):
    """Top-level project packages that the file at `path` (module `module`) imports."""
    tree = ast.parse(open(path).read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add(module.split('.')[0])
            elif node.module:
                found.add(node.module.split('.')[0])
    return found & (set(LAYERS) | {'scripts'})


def module_path(module):
    base = os.path.join(ROOT, *module.split('.'))
    return base + '.py' if os.path.isfile(base + '.py') else os.path.join(base, '__init__.py')


def test_every_project_package_has_a_layer():
    packages = {name[:-3] if name.endswith('.py') else name for name in os.listdir(ROOT)
                if (name.endswith('.py') and name not in CLIS + ('setup.py',))
                or os.path.isfile(os.path.join(ROOT, name, '__init__.py'))}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


@pytest.mark.parametrize('package', sorted(LAYERS))
def test_imports_go_only_downwards(package):
    wrong = []
    for module in package_modules(package):
        for other in imported_packages(module_path(module), module):
            if other != package and LAYERS.get(other, 99) >= LAYERS[package]:
                wrong.append('%s imports %s' % (module, other))
    assert not wrong, wrong


BLOCKER = '''
import importlib.abc, sys
BLOCKED = set(sys.argv[2].split(','))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('layering: %s may not be imported here' % name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import importlib
for module in sys.argv[3].split(','):
    importlib.import_module(module)
'''


@pytest.mark.parametrize('package', sorted(set(LAYERS) - {'cxx'}))
def test_package_imports_with_higher_layers_blocked(package):
    """Import every module of `package` in a fresh interpreter in which the packages of its own
    and higher layers (and the scripts) cannot be imported."""
    blocked = sorted(name for name, layer in LAYERS.items()
                     if layer >= LAYERS[package] and name != package) + ['scripts']
    proc = subprocess.run([sys.executable, '-c', BLOCKER, ROOT, ','.join(blocked),
                           ','.join(package_modules(package))],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_inference_runs_without_onnxruntime():
    """onnxruntime (and onnx, dlib) are optional: the MXNet path imports and runs without them,
    and asking for the onnxruntime backend then says what is missing in one line."""
    check = BLOCKER + """
from inference import FaceAligner, load_heatmap_model
assert FaceAligner().model.input_size == 128
try:
    load_heatmap_model('x.onnx', backend='onnxruntime')
except ValueError as exc:
    assert 'needs onnxruntime' in str(exc) and '\\n' not in str(exc), exc
else:
    raise AssertionError('no error without onnxruntime')
"""
    proc = subprocess.run([sys.executable, '-c', check, ROOT, 'onnxruntime,onnx,dlib',
                           'inference,evaluation.protocol,training'],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
