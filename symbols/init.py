"""Parameter initialisation of the original: bilinear up-sampling kernels, zero deformable
offsets, Xavier (gaussian, fan-in, magnitude 2) elsewhere; BatchNorm gamma 1, beta 0."""
import mxnet as mx


def initializer():
    return mx.init.Mixed(
        ['.*upsampling.*', '.*offset.*', '.*'],
        [mx.init.Bilinear(), mx.init.Zero(),
         mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)])
