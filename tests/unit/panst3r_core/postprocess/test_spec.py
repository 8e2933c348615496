import pytest

from panst3r_core.postprocess.spec import PostprocessSpec, canonical_spec, parse_option_items


def test_a_bare_name_has_no_options():
    spec = PostprocessSpec.parse("standard_v2")
    assert spec == PostprocessSpec("standard_v2") and str(spec) == "standard_v2"


def test_options_are_yaml_values_sorted_in_the_canonical_form():
    spec = PostprocessSpec.parse("standard_v1: niters=1, mask_threshold=0 ,cls_threshold=.3")
    assert spec.option_dict() == {"niters": 1, "mask_threshold": 0, "cls_threshold": 0.3}
    assert str(spec) == "standard_v1:cls_threshold=0.3,mask_threshold=0,niters=1"
    assert PostprocessSpec.parse(str(spec)) == spec


def test_canonical_spec_checks_names_and_options():
    assert canonical_spec("standard_v2:mask_threshold=0.0") == "standard_v2:mask_threshold=0.0"
    with pytest.raises(ValueError, match="mask_treshold"):
        canonical_spec("standard_v2:mask_treshold=0.0")
    with pytest.raises(ValueError, match="standard_v3"):
        canonical_spec("standard_v3")


@pytest.mark.parametrize("text", ["", ":mask_threshold=0", "standard_v2:mask_threshold", "standard_v2:=1"])
def test_malformed_strings_are_one_clear_error(text):
    with pytest.raises(ValueError, match="post-processing"):
        PostprocessSpec.parse(text)


def test_option_items_name_their_source():
    assert parse_option_items(["seed=3", "label_mode=sigmoid"], "--x") == {"seed": 3, "label_mode": "sigmoid"}
    with pytest.raises(ValueError, match="--x 'seed'"):
        parse_option_items(["seed"], "--x")


def test_the_shipped_dense_setting_is_written_canonically():
    from panst3r_core.pretrained import DENSE_POSTPROCESS

    assert canonical_spec(DENSE_POSTPROCESS) == DENSE_POSTPROCESS  # the label a sweep records
