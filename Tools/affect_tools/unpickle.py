"""A restricted loader for PyTorch checkpoints (`torch.save` zip files).

Pickled checkpoints are code: a normal `torch.load` of a whole pickled module imports and runs whatever
classes the pickle names. This loader builds no arbitrary objects. It understands exactly what a
checkpoint needs to hand over tensors: storages, `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`,
`collections.OrderedDict`, and plain containers. Any other global (a model class such as
`timm.models.efficientnet.EfficientNet`, `mobilefacenet.MobileFaceNet`, torch.nn layers) is replaced by an
inert `Stub` that only records its attribute dictionary, so the tensors of a whole pickled module are
recovered as a state dict by walking `_parameters`, `_buffers` and `_modules`, without importing or
executing the checkpoint's classes.
"""
import collections
import io
import pickle
import zipfile

import numpy as np

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": "bfloat16",
}


class Stub:
    """Stands in for any class the pickle names; keeps state, runs nothing."""
    _qualname = "?"

    def __init__(self, *args, **kwargs):
        self.__dict__["_args"] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self):
        return f"<stub {self._qualname}>"


_STUB_TYPES = {}


def _stub_class(qualname):
    """An inert subclass of Stub named after the pickled class (pickle's NEWOBJ needs a real type)."""
    if qualname not in _STUB_TYPES:
        _STUB_TYPES[qualname] = type(qualname.rsplit(".", 1)[-1], (Stub,), {"_qualname": qualname})
    return _STUB_TYPES[qualname]


class _Tensor:
    def __init__(self, array, requires_grad=False):
        self.array = array


class _LegacyStorage:
    """A storage of a legacy (pre-zip) checkpoint: its bytes follow the pickle, so tensors wait for them."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.data = None
        self.pending = []


def _rebuild_tensor(storage, offset, size, stride, *rest):
    if isinstance(storage, _LegacyStorage):
        t = _Tensor(None)
        storage.pending.append((t, offset, size, stride))
        return t
    dtype, data = storage
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    if dtype == "bfloat16":
        raw = np.frombuffer(data, dtype=np.uint16)
        flat = (raw.astype(np.uint32) << 16).view(np.float32)
    else:
        flat = np.frombuffer(data, dtype=dtype)
    if len(size) == 0:
        return _Tensor(flat[offset:offset + 1].reshape(()).copy())
    arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size),
                                          strides=tuple(s * (4 if dtype == "bfloat16" else itemsize) for s in stride))
    return _Tensor(np.ascontiguousarray(arr))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf, prefix):
        super().__init__(f)
        self.zf = zf
        self.prefix = prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return name
        if module == "builtins" and name in ("set", "frozenset", "tuple", "list", "dict", "slice", "range"):
            return {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict,
                    "slice": slice, "range": range}[name]
        return _stub_class(f"{module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        kind, storage_type, key = pid[0], pid[1], pid[2]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind}")
        name = storage_type if isinstance(storage_type, str) else getattr(storage_type, "_qualname", str(storage_type)).split(".")[-1]
        if name not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type {name}")
        data = self.zf.read(f"{self.prefix}/data/{key}")
        return (_DTYPES[name], data)


class _SafeUnpickler(pickle.Unpickler):
    """For the legacy header pickles (magic number, protocol, sys info, key lists): plain data only."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in a checkpoint header")


class _LegacyUnpickler(_Unpickler):
    def __init__(self, f):
        pickle.Unpickler.__init__(self, f)
        self.storages = {}

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata), or ('module', class, source file,
        # source) where a whole pickled module names its classes: the class is already an inert stub.
        if pid[0] == "module" and len(pid) >= 2 and isinstance(pid[1], type) and issubclass(pid[1], Stub):
            return pid[1]
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid[0]}")
        name = pid[1] if isinstance(pid[1], str) else str(pid[1])
        if name not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type {name}")
        key = pid[2]
        if key not in self.storages:
            self.storages[key] = _LegacyStorage(_DTYPES[name])
        return self.storages[key]


def _load_legacy(path):
    """`torch.save` before PyTorch 1.6: magic, protocol, sys info, the object pickle, the storage keys,
    then each storage's element count and raw little-endian bytes."""
    import struct
    with open(path, "rb") as f:
        magic = _SafeUnpickler(f).load()
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError(f"{path}: not a PyTorch checkpoint")
        _SafeUnpickler(f).load()  # protocol version
        _SafeUnpickler(f).load()  # sys info
        u = _LegacyUnpickler(f)
        root = u.load()
        keys = _SafeUnpickler(f).load()
        for key in keys:
            st = u.storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            itemsize = 2 if st.dtype == "bfloat16" else np.dtype(st.dtype).itemsize
            data = f.read(numel * itemsize)
            if len(data) != numel * itemsize:
                raise ValueError(f"{path}: truncated storage data")
            for t, offset, size, stride in st.pending:
                t.array = _rebuild_tensor((st.dtype, data), offset, size, stride).array
    return root


def load_checkpoint(path):
    """Returns the unpickled root object with tensors as numpy arrays (in `_Tensor.array`)."""
    if not zipfile.is_zipfile(path):
        return _load_legacy(path)
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if not pkl:
            raise ValueError(f"{path}: no data.pkl in the checkpoint")
        prefix = pkl[0][: -len("/data.pkl")]
        return _Unpickler(io.BytesIO(zf.read(pkl[0])), zf, prefix).load()


def state_dict(path):
    """Tensors of a checkpoint as an ordered name -> numpy array dict, whether it holds a state dict,
    a dict wrapping one (`state_dict`, `model`), or a whole pickled module."""
    root = load_checkpoint(path)
    return to_state_dict(root)


def to_state_dict(root):
    if isinstance(root, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in root and not isinstance(root[key], _Tensor):
                return to_state_dict(root[key])
        out = collections.OrderedDict()
        for k, v in root.items():
            if isinstance(v, _Tensor):
                out[k] = v.array
        if out:
            return out
    if isinstance(root, Stub):
        out = collections.OrderedDict()
        _walk(root, "", out)
        return out
    raise ValueError("the checkpoint holds neither a state dict nor a pickled module")


def _walk(mod, prefix, out):
    d = mod.__dict__
    for group in ("_parameters", "_buffers"):
        for k, v in (d.get(group) or {}).items():
            if isinstance(v, _Tensor):
                out[prefix + k] = v.array
    for k, child in (d.get("_modules") or {}).items():
        if isinstance(child, Stub):
            _walk(child, prefix + k + ".", out)


def module_class(path):
    """Qualified class name of a whole pickled module (e.g. 'timm.models.efficientnet.EfficientNet')."""
    root = load_checkpoint(path)
    return root._qualname if isinstance(root, Stub) else None
