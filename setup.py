"""Package metadata and the Cython kernels in cxx/ (built in place by `make`)."""
import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements():
    with open(os.path.join(HERE, 'requirements.txt')) as f:
        reqs = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    return [r for r in reqs if not r.startswith('pytest')] + ['mxnet==1.9.1']


def _extensions():
    import numpy
    from Cython.Build import cythonize
    sources = sorted(glob.glob(os.path.join('cxx', '*.pyx')))
    exts = [Extension('cxx.' + os.path.splitext(os.path.basename(s))[0], [s],
                      include_dirs=[numpy.get_include()],
                      extra_compile_args=['-O3'],
                      define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')])
            for s in sources]
    return cythonize(exts, language_level=3, quiet=True)


setup(
    name='deep-face-alignment',
    version='0.1.0',
    description='Stacked Hourglass and SAT heatmap networks for 2D/3D face alignment (MXNet)',
    packages=['symbols', 'data', 'data.synthetic', 'essh', 'cxx', 'training', 'evaluation',
              'inference'],
    py_modules=['config', 'console', 'fileio'],
    python_requires='>=3.8',
    install_requires=_requirements(),
    ext_modules=_extensions(),
)
