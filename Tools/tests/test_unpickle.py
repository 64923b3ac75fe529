"""pytest tests of the restricted unpickler (Tools/affect_tools/unpickle.py) against torch itself.

    Tools/.venv/bin/python -m pytest Tools/tests        # needs torch: development only, not part of CI

Each checkpoint is written by `torch.save` in the form users have it (state dict, whole pickled module, the
legacy pre-zip format) and read back without torch: the tensors must equal torch's, and a pickle that names a
callable (os.system through `__reduce__`) must be read without running it.
"""
import collections
import io
import os
import sys
import zipfile

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from affect_tools import unpickle  # noqa: E402


def small_module():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
    return m


def assert_same(ours, theirs):
    assert list(ours.keys()) == list(theirs.keys())
    for k, v in theirs.items():
        got = ours[k]
        assert got.shape == tuple(v.shape), k
        np.testing.assert_array_equal(got, v.numpy(), err_msg=k)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_state_dict_equals_torch(tmp_path, zip_format):
    m = small_module()
    path = tmp_path / "sd.pt"
    torch.save(m.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    assert_same(unpickle.state_dict(str(path)), m.state_dict())


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_whole_module_is_reduced_to_its_tensors(tmp_path, zip_format):
    m = small_module()
    path = tmp_path / "module.pt"
    torch.save(m, path, _use_new_zipfile_serialization=zip_format)
    assert_same(unpickle.state_dict(str(path)), m.state_dict())
    assert unpickle.module_class(str(path)) == "torch.nn.modules.container.Sequential"


def test_wrapped_state_dict_and_views(tmp_path):
    """A dict wrapping the state dict (`{"state_dict": ...}`), a transposed view and a tensor at an offset of a
    shared storage, a scalar, and bfloat16 (widened exactly to float32)."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = collections.OrderedDict(t=base.t(), tail=base.view(-1)[7:19].view(3, 4), scalar=torch.tensor(2.5),
                                 bf=torch.tensor([1.5, -3.0, 0.15625], dtype=torch.bfloat16))
    path = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": sd}, path)
    ours = unpickle.state_dict(str(path))
    for k in ("t", "tail", "scalar"):
        np.testing.assert_array_equal(ours[k], sd[k].numpy(), err_msg=k)
    np.testing.assert_array_equal(ours["bf"], sd["bf"].float().numpy())


class _RunsACommand:
    """Pickles as a call of os.system: torch.load(weights_only=False) would run the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_pickled_call_is_not_run(tmp_path, zip_format):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2), "payload": _RunsACommand(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    sd = unpickle.state_dict(str(path))
    assert not marker.exists(), "the unpickler ran os.system"
    np.testing.assert_array_equal(sd["weight"], np.ones(2, dtype=np.float32))
    # The named callable became an inert stub that recorded its arguments.
    payload = unpickle.load_checkpoint(str(path))["payload"]
    assert isinstance(payload, unpickle.Stub) and payload._qualname == "posix.system"
    assert not marker.exists()


def test_unknown_storage_type_is_refused(tmp_path):
    path = tmp_path / "int4.pt"
    torch.save({"w": torch.ones(3)}, path)
    # Rename the storage type inside data.pkl to one the loader does not know (same length keeps the pickle valid).
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in entries if n.endswith("/data.pkl"))
    assert b"FloatStorage" in entries[pkl]
    entries[pkl] = entries[pkl].replace(b"FloatStorage", b"QuantStorage")
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    with pytest.raises(Exception, match="unsupported storage type"):
        unpickle.state_dict(str(bad))


def test_truncated_legacy_checkpoint_is_refused(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(64)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        unpickle.state_dict(str(cut))


def test_a_class_in_a_legacy_header_is_refused(tmp_path):
    """The header pickles of the legacy format (magic, protocol, sys info) may hold plain data only."""
    import pickle
    buf = io.BytesIO()
    pickle.dump(_RunsACommand(tmp_path / "ran"), buf)
    path = tmp_path / "header.pt"
    path.write_bytes(buf.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="unexpected class"):
        unpickle.state_dict(str(path))
    assert not (tmp_path / "ran").exists()


def test_not_a_checkpoint(tmp_path):
    import pickle
    path = tmp_path / "numbers.pt"
    with open(path, "wb") as f:
        pickle.dump(12345, f)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        unpickle.state_dict(str(path))
