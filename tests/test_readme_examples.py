"""Every ```python block of README.md runs as written.

Each block is executed on its own, in a fresh namespace, with the repository root as the
working directory (so relative paths like 'models/...' resolve as they do for a user who
cloned it). The namespace holds only what README.md tells the reader to bring:

    image_bgr   a BGR uint8 photo with one face: matplotlib's bundled sample image
                'grace_hopper.jpg', read with cv2.imread

A block that needs anything else (downloaded weights, data sets, files made by an earlier
command) cannot run here and does not belong in README.md as a python block: show it as a
shell command or inline code instead.
"""
import os
import re

import cv2
import matplotlib.cbook
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')

# An opening fence with the info string `python`, the block, and the closing fence.
FENCE = re.compile(r'^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$')


def python_blocks(path=README):
    """[(first line number of the code, code)] of every ```python block in a Markdown file."""
    with open(path, encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence = opening.group('fence')
        language = opening.group('info').strip().split(' ')[0].lower()
        body, index = [], index + 1
        start = index + 1   # 1-based line number of the first code line
        while index < len(lines):
            closing = FENCE.match(lines[index])
            if (closing and closing.group('fence')[0] == fence[0]
                    and len(closing.group('fence')) >= len(fence)
                    and not closing.group('info').strip()):
                break
            body.append(lines[index])
            index += 1
        index += 1
        if language == 'python':
            blocks.append((start, '\n'.join(body) + '\n'))
    return blocks


def readme_namespace():
    """The names README.md's python blocks may use without defining them (see the module
    docstring), in a fresh module-like namespace."""
    photo = matplotlib.cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    image_bgr = cv2.imread(str(photo))
    assert image_bgr is not None, 'cannot read the bundled sample photo %s' % photo
    return {'__name__': '__main__', '__file__': README, 'image_bgr': image_bgr}


BLOCKS = python_blocks()


def test_readme_has_python_examples():
    assert BLOCKS, 'README.md has no ```python blocks; its API examples would go untested'


@pytest.mark.parametrize('line,code', BLOCKS, ids=['README.md:%d' % line for line, _ in BLOCKS])
def test_readme_python_block_runs(line, code, monkeypatch):
    monkeypatch.chdir(ROOT)
    # Leading newlines make tracebacks point at README.md's own line numbers.
    compiled = compile('\n' * (line - 1) + code, README, 'exec')
    exec(compiled, readme_namespace())


def test_block_parser_reads_fences(tmp_path):
    sample = tmp_path / 'sample.md'
    sample.write_text('text\n```python\na = 1\n```\n```\nshell\n```\n'
                      '````python\nb = """\n```\n"""\n````\n', encoding='utf-8')
    assert python_blocks(str(sample)) == [(3, 'a = 1\n'), (9, 'b = """\n```\n"""\n')]


def test_readme_links_resolve():
    """Relative links of README.md point at files the repository ships."""
    with open(README, encoding='utf-8') as handle:
        text = handle.read()
    missing = []
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target) or target.startswith('#'):
            continue
        path = target.split('#', 1)[0]
        if not os.path.exists(os.path.join(ROOT, path)):
            missing.append(target)
    assert not missing, 'README.md links to missing files: %s' % ', '.join(missing)
