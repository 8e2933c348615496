from __future__ import annotations

import pytest

from panst3r_core.checkpoint.constructor_strings import (
    Call,
    ConstructorStringError,
    Name,
    decoder_config,
    encoder_config,
    panoptic_config,
    parse_constructor_string,
)


def test_nested_calls_lists_tuples_none_quotes_and_positional_arguments():
    tree = parse_constructor_string(
        "Outer(1, 'a\\'b', (2,), (3), (4, 5), [6, -7.5e1], None, inner=Inner(\"x\", k=True), act=nn.GELU,)"
    )
    assert tree == Call(
        "Outer",
        [1, "a'b", (2,), 3, (4, 5), [6, -75.0], None],
        {"inner": Call("Inner", ["x"], {"k": True}), "act": Name("nn.GELU")},
    )


@pytest.mark.parametrize(
    "text", ["A(", "A(1,,2)", "A(b=1, 2)", "A(b=1, b=2)", "A(1) B", "A('x)", "A(1; 2)", "__import__('os')."]
)
def test_malformed_strings_are_rejected(text):
    with pytest.raises(ConstructorStringError):
        parse_constructor_string(text)


def test_parser_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConstructorStringError):
        parse_constructor_string(f"__import__('os').system('touch {marker}')")
    # A call of a dotted name is just data; mapping it onto a config refuses the unknown class.
    assert parse_constructor_string(f"os.system('touch {marker}')") == Call("os.system", [f"touch {marker}"])
    with pytest.raises(ValueError, match="unknown class 'os.system'"):
        encoder_config(f"os.system('touch {marker}')")
    assert not marker.exists()


def test_released_v1_strings_give_the_full_size_config():
    enc = encoder_config("Dust3rEncoder(img_size=(512, 512), patch_embed='PatchEmbedDust3R')")
    dec = decoder_config("MUSt3R(img_size=(512, 512), feedback_type='single_mlp', memory_mode='norm_y' )")
    pan = panoptic_config(
        "PanopticDecoder(upscaler=PixelShuffleUpscaler(2816), text_encoder='siglip', label_mode='sigmoid')"
    )
    assert (enc.embed_dim, enc.depth, enc.num_heads, enc.img_size) == (1024, 24, 16, [512, 512])
    assert (dec.embed_dim, dec.depth, dec.feedback_type) == (768, 12, "single_mlp")
    assert pan.pixel_shuffle.input_dim == 2816 and pan.loftup is None and pan.mask_dim == 256


def test_v2_string_with_input_mixer_and_loftup():
    pan = panoptic_config(
        "PanopticDecoder(input_mixer=InputMixer(img_size=[512, 512], patch_size=16, in_dim=2816, hidden_dim=768, "
        "num_heads=12, num_layers=3, ff_dim_mult=4), upscaler=LoftUpUpscaler(input_dim=768, dim=384, "
        "output_stride=2, patch_size=16), label_mode='sigmoid', text_encoder='siglip', mask_dim=384)"
    )
    assert pan.pixel_shuffle is None
    assert (pan.loftup.dim, pan.loftup.n_freqs, pan.input_mixer.num_layers, pan.mask_dim) == (384, 20, 3, 384)


def test_positional_arguments_follow_the_official_signatures():
    enc = encoder_config("Dust3rEncoder([512, 512], 16, 64, 2, 2)")
    assert (enc.patch_size, enc.embed_dim, enc.depth, enc.num_heads) == (16, 64, 2, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Dust3rEncoder(embed_dimm=64)", "no argument 'embed_dimm'"),
        ("Dust3rEncoder(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)", "at most 9 positional"),
        ("Dust3rEncoder(64, embed_dim=64, img_size=1)", "twice"),
        ("Dust3rEncoder(norm_layer=partial(nn.LayerNorm, eps=1e-5))", "not supported"),
    ],
)
def test_unknown_or_bad_arguments_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        encoder_config(text)


def test_unknown_upscaler_is_an_error():
    with pytest.raises(ValueError, match="unknown class 'FancyUpscaler'"):
        panoptic_config("PanopticDecoder(upscaler=FancyUpscaler(3))")
