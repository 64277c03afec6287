"""The optional Cython kernels (cxx/essh_kernels.pyx); `ext` is None when they are not built."""
try:
    from cxx import essh_kernels as ext
except ImportError:
    ext = None
