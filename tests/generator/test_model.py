"""The Wav2Pix networks: shapes for every audio length and image size, and the parameter counts of the reference
notes (../shared/reference/wav2pix-paper-system.md §1-3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from generator.errors import CheckpointError
from generator.model import (
    Discriminator,
    FaceDecoder,
    Generator,
    ModelConfig,
    SpeakerClassifier,
    SpeechEncoder,
    encoder_output_length,
    init_weights,
)

# reference notes: "Parameter counts (my arithmetic)", "Decoder parameters", "D parameters"
ENCODER_CONVS_BN = 10_397_184
ENCODER_HEAD = {1.0: 1_098_240, 0.7: 836_096, 0.3: 311_808}
CLASSIFIER_10_IDS = 28_230
DECODER = {64: 3_804_160, 128: 13_241_344}
DISCRIMINATOR = {64: 2_765_824, 128: 11_162_624}
FLAT = {1.0: 4096, 0.7: 3072, 0.3: 1024}
LENGTHS = {16000: [4000, 1000, 250, 63, 16, 4], 11200: [2800, 700, 175, 44, 11, 3], 4800: [1200, 300, 75, 19, 5, 1],
           64000: [16000, 4000, 1000, 250, 63, 16]}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_numbers_are_the_documented_ones(paper_reference):
    text = paper_reference.replace(",", "")
    for value in [ENCODER_CONVS_BN, CLASSIFIER_10_IDS, *ENCODER_HEAD.values(), *DECODER.values(),
                  *DISCRIMINATOR.values()]:
        assert str(value) in text, value


@pytest.mark.parametrize("n, lengths", LENGTHS.items())
def test_encoder_lengths_per_layer(n, lengths):
    encoder = SpeechEncoder(n)
    x, got = torch.zeros(1, 1, n), []
    for layer in encoder.convs:
        if isinstance(layer, (nn.ConstantPad1d, nn.Conv1d)):
            x = layer(x)
        if isinstance(layer, nn.Conv1d):
            got.append(x.shape[-1])
    assert got == lengths
    assert encoder_output_length(n) == lengths[-1]


@pytest.mark.parametrize("seconds", [0.3, 0.7, 1.0])
def test_encoder_parameters_and_fc_width(seconds):
    encoder = SpeechEncoder(round(seconds * 16000))
    assert count(encoder.convs) == ENCODER_CONVS_BN
    assert count(encoder.head) == ENCODER_HEAD[seconds]
    assert encoder.head[0].in_features == FLAT[seconds]
    assert [m.out_channels for m in encoder.convs if isinstance(m, nn.Conv1d)] == [16, 32, 128, 256, 512, 1024]
    convs = [m for m in encoder.convs if isinstance(m, nn.Conv1d)]
    assert all(c.kernel_size == (15,) and c.stride == (4,) and c.bias is not None for c in convs)
    assert [m.negative_slope for m in encoder.convs if isinstance(m, nn.LeakyReLU)] == [0.3] * 6


@pytest.mark.parametrize("identities, expected",
                         [(10, CLASSIFIER_10_IDS), (2, 26_200 + 203 * 2), (7, 26_200 + 203 * 7)])
def test_classifier_size_follows_the_number_of_identities(identities, expected):
    assert count(SpeakerClassifier(identities)) == expected


@pytest.mark.parametrize("size", [64, 128])
def test_decoder_and_discriminator_parameters(size):
    decoder = FaceDecoder(size)
    assert count(decoder) == DECODER[size]
    dropouts = [m for m in decoder.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == {64: 4, 128: 5}[size] and all(d.p == 0.5 for d in dropouts)
    assert isinstance(decoder.layers[-1], nn.Tanh)
    convs = [m for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(hasattr(c, "parametrizations") for c in convs)  # spectrally normalised
    assert count(Discriminator(ModelConfig(size, 1.0, 2))) == DISCRIMINATOR[size]


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("seconds", [0.3, 0.7, 1.0])
def test_shapes_for_every_length_and_size(size, seconds, speech_batch):
    config = ModelConfig(size, seconds, 3)
    G, D = Generator(config), Discriminator(config)
    assert count(G) == ENCODER_CONVS_BN + ENCODER_HEAD[seconds] + 26_200 + 203 * 3 + DECODER[size]
    speech = speech_batch(2, seconds)
    face, embedding, logits = G(speech)
    assert face.shape == (2, 3, size, size)
    assert embedding.shape == (2, 128) and logits.shape == (2, 3)
    assert face.abs().max() <= 1.0
    score, features = D(face, embedding)
    assert score.shape == (2,)
    assert features.shape == (2, {64: 512, 128: 1024}[size], 4, 4)


def test_wrong_input_length_fails_loudly(speech_batch):
    G = Generator(ModelConfig(64, 0.3, 2))
    with pytest.raises(RuntimeError):
        G(speech_batch(2, 1.0))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"image_size": 96}, "image size must be one of"), ({"audio_seconds": 0.5}, "audio length must be one of"),
    ({"num_identities": 1}, "at least 2 identities"),
])
def test_model_config_validation(kwargs, fragment):
    with pytest.raises(CheckpointError, match=fragment):
        ModelConfig(**kwargs)


def test_paper_initialisation():
    torch.manual_seed(0)
    G = Generator(ModelConfig(64, 1.0, 2))
    init_weights(G)
    conv = G.encoder.convs[17]  # Conv1d 512 -> 1024: plenty of weights
    assert conv.weight.mean().abs() < 1e-3 and conv.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert G.encoder.head[0].weight.std().item() == pytest.approx(0.02, rel=0.02)
    bn = G.encoder.convs[18]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01) and torch.all(bn.bias == 0)
    original = G.decoder.layers[0].parametrizations.weight.original  # 128 x 512 x 4 x 4, fan = 128 * 16
    bound = 1 / (128 * 16) ** 0.5
    assert original.abs().max() <= bound and original.abs().max() > 0.95 * bound
