"""FluxParams differ between ComfyUI versions; the demo model's stored params load on all of them."""

import dataclasses

import comfy.ldm.flux.model
import pytest

from seg2any.adapters.comfyui_models import flux_params
from training.models import TINY_FLUX


def test_demo_params_load_on_this_comfyui():
    p = flux_params(**TINY_FLUX)
    fields = dataclasses.fields(comfy.ldm.flux.model.FluxParams)
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert required <= set(p) <= {f.name for f in fields}  # complete for this version, nothing foreign
    comfy.ldm.flux.model.FluxParams(**p)
    assert p["hidden_size"] == TINY_FLUX["hidden_size"] and p["depth_single_blocks"] == TINY_FLUX["depth_single_blocks"]


def test_a_newer_field_with_a_real_value_is_refused_by_older_comfyui():
    names = {f.name for f in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}
    if "txt_ids_dims" in names:
        assert flux_params(txt_ids_dims=[1])["txt_ids_dims"] == [1]
    else:
        with pytest.raises(ValueError, match="txt_ids_dims"):
            flux_params(txt_ids_dims=[1])
    with pytest.raises(ValueError, match="no_such_field"):
        flux_params(no_such_field=1)
