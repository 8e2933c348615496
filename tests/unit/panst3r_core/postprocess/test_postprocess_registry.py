import pytest
import torch

from panst3r_core.postprocess import DEFAULT_POSTPROCESSOR, POSTPROCESSORS, run_postprocessor
from panst3r_core.postprocess.qubo import QuboOptions
from panst3r_core.postprocess.standard import STANDARD_V1, StandardOptions, standard_postprocess


def test_registered_names_and_default():
    assert POSTPROCESSORS.names() == ["qubo", "standard_v1", "standard_v2"]
    assert DEFAULT_POSTPROCESSOR == "standard_v2"
    assert POSTPROCESSORS.get("standard_v1").defaults == STANDARD_V1
    assert POSTPROCESSORS.get("standard_v2").defaults == StandardOptions()
    assert isinstance(POSTPROCESSORS.get("qubo").defaults, QuboOptions)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError) as info:
        POSTPROCESSORS.get("standard_v3")
    message = str(info.value)
    assert "standard_v3" in message
    for name in ("qubo", "standard_v1", "standard_v2"):
        assert name in message


def test_overrides_start_from_the_entry_defaults_and_unknown_keys_are_named():
    options = POSTPROCESSORS.get("standard_v1").options({"niters": 3})
    assert options == StandardOptions(mask_threshold=0.5, overlap_threshold=0.8, niters=3)
    with pytest.raises(ValueError, match="valid keys: .*cls_threshold"):
        POSTPROCESSORS.get("standard_v2").options({"mask_treshold": 0.3})


def test_run_by_name_equals_the_direct_call():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=generator) * 3
    masks = [torch.randn(6, 4, 5, generator=generator) * 4]
    by_name = run_postprocessor("standard_v1", logits, masks, [(8, 10)], {"cls_threshold": 0.2})
    direct = standard_postprocess(
        logits,
        masks,
        [(8, 10)],
        StandardOptions(mask_threshold=0.5, overlap_threshold=0.8, niters=1, cls_threshold=0.2),
    )
    assert torch.equal(by_name.pan[0], direct.pan[0])
    assert by_name.segments_as_dicts() == direct.segments_as_dicts()
