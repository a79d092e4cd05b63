"""GGUF-quantised FLUX for the comfyui tier: files in the layout city96's ComfyUI-GGUF reads, and
that pack itself, unpacked from the shared snapshot and imported as ComfyUI would.

The writer follows the pack's documented file conventions (architecture "flux", BFL tensor names,
one-dimensional and tiny tensors kept in F32, weight matrices quantised), using the ``gguf``
package's own quantisers.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
import tarfile

import numpy as np
import torch

SMALL = 1024  # tensors up to this many values stay F32, as the pack's converter keeps them


def write_gguf(path: str, state_dict: dict[str, torch.Tensor], qtype: str = "Q8_0") -> dict[str, int]:
    """Write ``state_dict`` (checkpoint names) as a FLUX GGUF file; returns tensor counts per type."""
    import gguf

    q = gguf.GGMLQuantizationType[qtype]
    block = gguf.GGML_QUANT_SIZES[q][0]
    writer = gguf.GGUFWriter(path=None, arch="flux")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    counts: dict[str, int] = {}
    for key, t in state_dict.items():
        data = t.detach().to(torch.float32).numpy()
        kind = q if data.ndim == 2 and data.size > SMALL and data.shape[-1] % block == 0 else gguf.GGMLQuantizationType.F32
        writer.add_tensor(key, gguf.quants.quantize(np.ascontiguousarray(data), kind), raw_dtype=kind)
        counts[kind.name] = counts.get(kind.name, 0) + 1
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return counts


def gguf_pack_archive(shared: str) -> str | None:
    found = sorted(glob.glob(os.path.join(shared, "custom_nodes", "ComfyUI-GGUF-*.tar.gz")))
    return found[-1] if found else None


def unpack_gguf_pack(archive: str, custom_nodes: str) -> str:
    """``custom_nodes/ComfyUI-GGUF`` from the snapshot archive (extracted once)."""
    dest = os.path.join(custom_nodes, "ComfyUI-GGUF")
    if not os.path.isfile(os.path.join(dest, "__init__.py")):
        os.makedirs(custom_nodes, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(custom_nodes, filter="data")
    return dest


def import_gguf_pack(pack_dir: str):
    """Import the pack in-process as a package, the way ComfyUI loads a custom node folder."""
    name = "ComfyUI_GGUF_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(pack_dir, "__init__.py"), submodule_search_locations=[pack_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
