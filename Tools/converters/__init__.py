"""Converter families for Tools/convert.py.

Each family module (`vision`, `keras`, `mtcnn`, `hf_audio`, `text`, `head`) is a `Family`: it recognises the
sources it reads and writes an Affect weight file from one. `convert.py` asks the families in order; a new
family is a module with these two functions added to `convert.FAMILIES` (and its architectures to
`convert.ARCH_FAMILY`).
"""
import argparse
from typing import Optional, Protocol, runtime_checkable


@runtime_checkable
class Family(Protocol):
    def detect(self, source: str) -> Optional[str]:
        """The architecture (`affect.arch`) of `source` (a file or folder) if this family reads it, else None."""
        ...

    def convert(self, source: str, output: str, arch: str, args: argparse.Namespace) -> None:
        """Writes `output` (.safetensors with `affect.*` metadata) from `source`; raises on what it cannot read."""
        ...
