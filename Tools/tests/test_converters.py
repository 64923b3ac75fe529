"""Every converter family Tools/convert.py lists is a `converters.Family` with the signatures convert.py calls.

    Tools/.venv/bin/python -m pytest Tools/tests
"""
import inspect
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import convert  # noqa: E402
from converters import Family  # noqa: E402


@pytest.mark.parametrize("name", convert.FAMILIES)
def test_family_has_the_interface(name):
    fam = convert._family(name)
    assert fam is not None and isinstance(fam, Family)
    assert list(inspect.signature(fam.detect).parameters)[:1] == ["source"]
    assert list(inspect.signature(fam.convert).parameters)[:4] == ["source", "output", "arch", "args"]


def test_every_arch_has_a_family():
    assert set(convert.ARCH_FAMILY.values()) <= set(convert.FAMILIES)


def test_unknown_source_is_not_claimed(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a model")
    assert all(convert._family(n).detect(str(junk)) is None for n in convert.FAMILIES)
