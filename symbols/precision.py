"""bfloat16 mixed precision on CPUs that have it (MXNet 1.9.1 contrib.amp, oneDNN 2.4).

- `check_dtype(dtype, flags)`: 'float32' always; 'bf16' only on a CPU whose flags include
  avx512_bf16 or amx_bf16, otherwise a ValueError of one line naming the reason.
- `enable_amx(flags)`: lets oneDNN use AMX tiles for bf16 in this process. MXNet 1.9.1's
  oneDNN neither asks Linux for the AMX state nor uses AMX unless DNNL_MAX_CPU_ISA allows it;
  without AMX, bf16 convolutions on this project's CPUs ran slower than float32.
- `bf16_training_graph` / `bf16_inference_model`: AMP's conversion, with the convolutions
  AMP's pass mis-types (`float32_convolutions`) and, in training, the small and grouped ones
  (`small_convolutions`) left in float32. Parameters stay float32 in training (AMP casts a
  copy of each convolution weight to bf16 on its way in; gradients and the optimizer stay
  float32), and the operators AMP lists as float32 (the losses, softmax, up-sampling,
  reshapes) stay so. BatchNorm runs on bf16 data with float32 statistics and parameters.
"""
import contextlib
import ctypes
import io
import json
import logging
import os
import platform
import re

import mxnet as mx
from mxnet.contrib import amp
from mxnet.contrib.amp.amp import bfloat16

DTYPES = ('float32', 'bf16')
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
# Convolutions with fewer channels on either side stay float32 in training: with AMX, oneDNN
# 2.4 gives such layers' outputs and their gradients different memory layouts, and the
# BatchNorm backward after them falls back to its reference kernel (seconds per call; the
# shipped model's graph trained 4x slower in bf16 than in float32 that way).
MIN_BF16_TRAINING_CHANNELS = 32

_SYS_ARCH_PRCTL = 158               # x86-64
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_OPERATOR_IN_ERROR = re.compile(r'Error in operator (\S+?):')

logger = logging.getLogger(__name__)


def cpu_flags(path='/proc/cpuinfo'):
    """The feature flags of the first CPU in `path` (empty when it cannot be read)."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'flags':
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def bf16_unsupported_reason(flags):
    """Why bf16 cannot run on a CPU with these flags, or None when it can."""
    if any(flag in flags for flag in BF16_FLAGS):
        return None
    return ('this CPU has neither %s in its flags (/proc/cpuinfo), so MXNet would emulate '
            'bf16 slowly' % ' nor '.join(BF16_FLAGS))


def check_dtype(dtype, flags=None):
    """ValueError of one line unless `dtype` can run here; `flags` defaults to this CPU's."""
    if dtype not in DTYPES:
        raise ValueError('dtype must be one of %s, got %r' % (', '.join(DTYPES), dtype))
    if dtype == 'bf16':
        reason = bf16_unsupported_reason(cpu_flags() if flags is None else flags)
        if reason:
            raise ValueError('dtype bf16 refused: %s; use float32' % reason)


def enable_amx(flags=None):
    """Let oneDNN run bf16 on AMX in this process; True when it was switched on.

    Asks Linux for the AMX tile state (arch_prctl), then makes oneDNN read DNNL_MAX_CPU_ISA
    once with AMX allowed (a tiny bf16 convolution) and restores the environment, so child
    processes, which lack the permission, do not inherit the setting. oneDNN reads that
    variable at its first primitive only: call this before any MXNet operator runs in the
    process (the command-line tools do), otherwise it has no effect. False (nothing changed)
    on CPUs without AMX, outside x86-64 Linux, when Linux refuses, or when the user set
    DNNL_MAX_CPU_ISA themselves."""
    flags = cpu_flags() if flags is None else flags
    if 'amx_bf16' not in flags or 'amx_tile' not in flags:
        return False
    if platform.system() != 'Linux' or platform.machine() != 'x86_64':
        return False
    if 'DNNL_MAX_CPU_ISA' in os.environ:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) != 0:
        logger.info('AMX not enabled: Linux refused the tile state (%s)',
                    os.strerror(ctypes.get_errno()))
        return False
    os.environ['DNNL_MAX_CPU_ISA'] = 'AVX512_CORE_AMX'
    try:
        probe = mx.nd.amp_cast(mx.nd.ones((1, 16, 2, 2)), dtype=bfloat16)
        weight = mx.nd.amp_cast(mx.nd.ones((16, 16, 1, 1)), dtype=bfloat16)
        mx.nd.Convolution(probe, weight, num_filter=16, kernel=(1, 1),
                          no_bias=True).wait_to_read()
    finally:
        del os.environ['DNNL_MAX_CPU_ISA']
    return True


def prepare_bf16(flags=None):
    """What a program running bf16 does first: refuse a CPU without bf16, switch AMX on, and
    say so in one line when bf16 has to run without AMX (slower than float32 on the CPUs
    measured, docs/benchmarks.md)."""
    flags = cpu_flags() if flags is None else flags
    check_dtype('bf16', flags)
    if enable_amx(flags):
        return True
    logger.warning('bf16 without AMX (%s): its convolutions run on AVX512-BF16, which was '
                   'slower than float32 on the CPUs measured',
                   'DNNL_MAX_CPU_ISA is set' if 'DNNL_MAX_CPU_ISA' in os.environ
                   else 'this CPU or system does not offer it')
    return False


def _mistyped_operator(symbol, data_names):
    """The operator named by the graph's type-inference error, or None when the types agree."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # infer_type prints on failure
            symbol.infer_type(**{name: 'float32' for name in data_names})
    except mx.base.MXNetError as err:
        match = _OPERATOR_IN_ERROR.search(str(err))
        if match is None:
            raise
        return match.group(1)
    return None


def float32_convolutions(symbol, data_names, excluded=()):
    """The operators (beyond `excluded`) that AMP's bf16 pass must leave in float32 for the
    graph to type-check. MXNet 1.9.1's pass mis-types a convolution fed through Pooling from a
    widest-type operator (the CAB blocks' first convolutions after each pooling): it casts
    neither the data nor the weight, and binding fails. Each such operator is named by the
    type check, excluded, and the conversion repeated."""
    excluded = list(excluded)
    found = []
    while True:
        converted = amp.convert_symbol(symbol, 'bfloat16', data_names=list(data_names),
                                       excluded_sym_names=excluded + found)
        name = _mistyped_operator(converted, data_names)
        if name is None:
            return found
        if name in excluded + found:
            raise ValueError('bf16: AMP leaves %s mis-typed even in float32' % name)
        found.append(name)


def small_convolutions(symbol, shapes, minimum=MIN_BF16_TRAINING_CHANNELS):
    """Names of the convolutions with fewer than `minimum` input or output channels, and of
    the grouped (depthwise) ones, for the data/label `shapes` ({name: shape}). oneDNN 2.4 has
    no AMX kernel for grouped convolutions: in bf16 they gained nothing on hg2d3-cab, and the
    BatchNorm after a 32-channel one fell back to the reference kernel as above."""
    internals = symbol.get_internals()
    _, out_shapes, _ = internals.infer_shape(**shapes)
    shape_of = dict(zip(internals.list_outputs(), out_shapes))
    names = []
    for node in json.loads(symbol.tojson())['nodes']:
        if node['op'] != 'Convolution':
            continue
        groups = int(node.get('attrs', {}).get('num_group', 1))
        outputs, inputs_per_group = shape_of[node['name'] + '_weight'][:2]
        if groups > 1 or min(outputs, inputs_per_group) < minimum:
            names.append(node['name'])
    return names


def bf16_training_graph(symbol, shapes):
    """The training graph with AMP bf16 casts; its parameters stay float32, so a Module bound
    on it saves float32 checkpoints of the original graph's names. `shapes`: {data/label
    name: shape}. Returns (graph, names of the convolutions left in float32)."""
    data_names = list(shapes)
    float32 = small_convolutions(symbol, shapes)
    float32 += float32_convolutions(symbol, data_names, float32)
    graph = amp.convert_symbol(symbol, 'bfloat16', data_names=data_names,
                               excluded_sym_names=float32)
    return graph, float32


def bf16_inference_model(symbol, arg_params, aux_params, data_name='data'):
    """(graph, arg_params, aux_params) for bf16 inference of a float32 inference graph: AMP's
    casts, with the weights of bf16 convolutions stored in bf16 (no per-call cast). Outputs
    stay float32. The given dicts are not modified."""
    float32 = float32_convolutions(symbol, [data_name])
    return amp.convert_model(symbol, dict(arg_params), dict(aux_params),
                             target_dtype='bfloat16', excluded_sym_names=float32,
                             cast_optional_params=True)
