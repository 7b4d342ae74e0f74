"""Audio loading (any rate, channel count, WAV or FLAC -> 16 kHz mono), length policy and the paper's normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from generator.data.audio import (
    PRE_EMPHASIS,
    crop_to_length,
    load_speech,
    normalise,
    num_samples,
    read_audio,
    to_pcm16,
)
from generator.errors import DataError

LEGACY_VALUES = {-1.0, -0.95, -0.05, 0.0, 0.95, 1.0}


def sine(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_num_samples_for_the_three_lengths():
    assert [num_samples(s) for s in (0.3, 0.7, 1.0)] == [4800, 11200, 16000]


def test_pcm16_wav_at_16k_reads_exact_int16_values(tmp_path, make_audio, make_noise):
    samples = make_noise(3000, seed=1)
    wave = read_audio(make_audio(tmp_path / "a.wav", samples))
    assert wave.shape == (3000,)
    np.testing.assert_array_equal(wave, samples.astype(np.float64))


@pytest.mark.parametrize(
    "rate, channels, suffix",
    [(8_000, 1, ".wav"), (22_050, 1, ".flac"), (44_100, 2, ".wav"), (44_100, 2, ".flac"), (48_000, 3, ".wav")],
)
def test_other_rates_and_channel_counts_become_16k_mono(tmp_path, make_audio, rate, channels, suffix):
    tone = sine(rate, 0.5)
    data = np.stack([tone] + [np.zeros_like(tone)] * (channels - 1), axis=1) if channels > 1 else tone
    path = make_audio(tmp_path / f"tone{suffix}", np.round(data * 32767).astype(np.int16), rate=rate)
    wave = read_audio(path)
    assert wave.shape == (8000,)  # 0.5 s at 16 kHz
    # mono = mean of the channels: the tone in one channel of C arrives at 1/C of its amplitude
    expected = sine(16_000, 0.5) * 32767 / channels
    middle = slice(200, -200)  # resampling filters ring at the edges
    assert np.max(np.abs(wave[middle] - expected[middle])) < 0.01 * 16384


def test_stereo_channels_are_averaged(tmp_path, make_audio):
    left = np.full(1000, 1000, np.int16)
    right = np.full(1000, -200, np.int16)
    wave = read_audio(make_audio(tmp_path / "st.wav", np.stack([left, right], axis=1)))
    np.testing.assert_array_equal(wave, np.full(1000, 400.0))


def test_float_wav_is_scaled_to_int16_units(tmp_path, make_audio):
    data = np.array([0.0, 0.5, -0.5, -1.0, 0.25], dtype=np.float32)
    wave = read_audio(make_audio(tmp_path / "f.wav", data, subtype="FLOAT"))
    np.testing.assert_array_equal(wave, [0.0, 16384.0, -16384.0, -32768.0, 8192.0])


def test_flac_44k_stereo_end_to_end_model_input(tmp_path, make_audio):
    tone = np.round(sine(44_100, 1.2) * 32767).astype(np.int16)
    path = make_audio(tmp_path / "clip.flac", np.stack([tone, tone], axis=1), rate=44_100)
    speech = load_speech(path, seconds=1.0)
    assert speech.dtype == np.float32 and speech.shape == (16_000,)


@pytest.mark.parametrize("seconds", [0.3, 0.7, 1.0])
def test_centre_crop_to_each_length(tmp_path, make_audio, seconds):
    ramp = np.arange(-16_000, 16_000, dtype=np.int16)  # 2 s, every value distinct
    n = num_samples(seconds)
    start = (32_000 - n) // 2
    cropped = crop_to_length(ramp.astype(np.float64), n)
    np.testing.assert_array_equal(cropped, ramp[start : start + n])
    # through the file loader: the crop is centred, then normalised by the crop's own peak
    speech = load_speech(make_audio(tmp_path / "ramp.wav", ramp), seconds)
    expected = normalise(ramp[start : start + n].astype(np.float64))
    assert speech.shape == (n,)
    np.testing.assert_array_equal(speech, expected)


def test_exact_length_is_kept_whole():
    wave = np.arange(1, 4801, dtype=np.float64)
    np.testing.assert_array_equal(crop_to_length(wave, 4800), wave)


def test_short_clip_is_an_error_naming_file_and_lengths(tmp_path, make_audio, make_noise):
    path = make_audio(tmp_path / "short.wav", make_noise(4000))
    with pytest.raises(DataError) as err:
        load_speech(path, seconds=0.3)
    message = str(err.value)
    assert str(path) in message and "4000 samples" in message and "4800 samples" in message


def test_short_clip_padding_is_centred_zeros(tmp_path, make_audio, make_noise):
    samples = make_noise(4001)
    padded = crop_to_length(samples.astype(np.float64), 4800, short="pad")
    assert padded.shape == (4800,)
    assert np.all(padded[:399] == 0) and np.all(padded[-400:] == 0)
    np.testing.assert_array_equal(padded[399:4400], samples)
    speech = load_speech(make_audio(tmp_path / "s.wav", samples), 0.3, short="pad")
    assert speech.shape == (4800,) and np.all(speech[:399] == 0)


def test_peak_normalisation_and_pre_emphasis_by_hand():
    # peak |x| = 200: scaled [0, .5, -1, .25]; y[n] = s[n] - 0.95 s[n-1]
    y = normalise(np.array([0.0, 100.0, -200.0, 50.0]), "peak")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 0.5, -1.0 - 0.95 * 0.5, 0.25 + 0.95], rtol=0, atol=1e-7)
    assert PRE_EMPHASIS == 0.95


def test_peak_normalisation_is_scale_invariant_and_bounded(make_noise):
    x = make_noise(5000, seed=3).astype(np.float64)
    y = normalise(x)
    np.testing.assert_allclose(y, normalise(x * 0.01), atol=1e-6)
    # undo the pre-emphasis: the scaled signal peaks at exactly 1
    s = np.zeros_like(y, dtype=np.float64)
    s[0] = y[0]
    for n in range(1, len(y)):
        s[n] = y[n] + 0.95 * s[n - 1]
    assert np.max(np.abs(s)) == pytest.approx(1.0, abs=1e-4)


def test_legacy_py2_floor_division_by_hand():
    # floor(x / 200): [0, 0, -1, 0, 1, 0, -1, -1], then pre-emphasis
    wave = np.array([0.0, 100.0, -200.0, 50.0, 200.0, 30.0, -1.0, -5.0])
    y = normalise(wave, "legacy_py2")
    np.testing.assert_allclose(y, [0.0, 0.0, -1.0, 0.95, 1.0, -0.95, -1.0, -0.05], rtol=0, atol=1e-7)


def test_legacy_py2_on_a_clip_gives_the_sign_signal_values(tmp_path, make_audio, make_noise):
    samples = make_noise(16_000, seed=5, amplitude=12_000)
    samples[8000] = 20_000  # a unique positive peak with positive neighbours, as in a typical voiced clip
    samples[7999], samples[8001] = 500, 600
    speech = load_speech(make_audio(tmp_path / "legacy.wav", samples), 1.0, normalisation="legacy_py2")
    values = set(np.round(speech.astype(np.float64), 6).tolist())
    assert values == LEGACY_VALUES
    # floor division: -1 for every negative sample, +1 only at the peak
    assert int(np.sum(np.isclose(speech, 1.0))) == 1


def test_unknown_normalisation_is_rejected():
    with pytest.raises(DataError, match="unknown audio normalisation"):
        normalise(np.array([1.0, 2.0]), "rms")


def test_silent_clip_is_an_error_naming_the_file(tmp_path, make_audio):
    path = make_audio(tmp_path / "silent.wav", np.zeros(5000, np.int16))
    with pytest.raises(DataError, match="silent") as err:
        load_speech(path, 0.3)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "case, fragment",
    [("missing", "not found"), ("corrupt", "not a readable"), ("text", "not a readable"),
     ("empty", "zero samples"), ("nan", "NaN"), ("inf", "NaN or infinite")],
)
def test_bad_audio_files_give_one_clear_error(tmp_path, make_audio, case, fragment):
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    elif case == "text":
        path.write_text("this is not audio\n")
    elif case == "empty":
        make_audio(path, np.zeros(0, np.int16))
    elif case in ("nan", "inf"):
        data = np.linspace(-0.5, 0.5, 4800).astype(np.float32)
        data[100] = np.nan if case == "nan" else np.inf
        make_audio(path, data, subtype="FLOAT")
    with pytest.raises(DataError) as err:
        read_audio(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# every format, bit depth and level: read in floating point at full precision, normalised after
# ---------------------------------------------------------------------------------------------------------------

def speechlike(n: int = 16_000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16_000
    wave = np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.1 * rng.normal(size=n)
    return 0.9 * wave / np.max(np.abs(wave))  # peak 0.9: representable in every format


@pytest.mark.parametrize("subtype, suffix, tolerance", [
    ("FLOAT", ".wav", 1e-6), ("DOUBLE", ".wav", 1e-12), ("PCM_24", ".wav", 1e-6), ("PCM_32", ".wav", 1e-8),
    ("PCM_24", ".flac", 1e-6),
])
@pytest.mark.parametrize("level_db", [0.0, -72.0, -100.0])
def test_any_depth_and_level_gives_the_full_level_model_input(tmp_path, make_audio, subtype, suffix, tolerance,
                                                              level_db):
    wave = speechlike()
    reference = normalise(wave * 32768, "peak")
    path = make_audio(tmp_path / f"clip{suffix}", wave * 10 ** (level_db / 20), subtype=subtype)
    model_input = load_speech(path, 1.0)
    # a 24-bit clip 100 dB down keeps ~4 bits: close, not exact; every other case to the format's precision
    bound = 0.2 if (subtype == "PCM_24" and level_db == -100.0) else max(tolerance * 10 ** (-level_db / 20), 1e-5)
    assert np.max(np.abs(model_input - reference)) < bound
    assert np.corrcoef(model_input, reference)[0, 1] > 0.99


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_above_full_scale_is_not_clipped(tmp_path, make_audio, subtype):
    wave = speechlike() * 4.0 / 0.9  # peak 4.0: legal in float WAV
    read = read_audio(make_audio(tmp_path / "loud.wav", wave, subtype=subtype))
    np.testing.assert_allclose(read / 32768, wave, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(load_speech(tmp_path / "loud.wav", 1.0), normalise(wave, "peak"), atol=1e-6)


def test_very_quiet_is_not_silent_and_all_zero_is(tmp_path, make_audio):
    quiet = make_audio(tmp_path / "quiet.wav", speechlike() * 1e-7, subtype="FLOAT")  # -140 dB, not silence
    np.testing.assert_allclose(load_speech(quiet, 1.0), normalise(speechlike(), "peak"), atol=1e-5)
    silent = make_audio(tmp_path / "silent.wav", np.zeros(16_000), subtype="FLOAT")
    with pytest.raises(DataError, match="all samples are zero"):
        load_speech(silent, 1.0)


def test_legacy_normalisation_says_when_a_clip_is_below_one_16bit_step(tmp_path, make_audio):
    path = make_audio(tmp_path / "quiet.wav", speechlike() * 1e-6, subtype="FLOAT")
    with pytest.raises(DataError, match="quieter than one 16-bit step") as err:
        load_speech(path, 1.0, normalisation="legacy_py2")
    assert str(path) in str(err.value)


def test_short_clip_error_mentions_pad_short(tmp_path, make_audio, make_noise):
    path = make_audio(tmp_path / "short.wav", make_noise(8000, seed=2))
    with pytest.raises(DataError, match="--pad-short"):
        load_speech(path, 1.0)


def test_pcm16_conversion_rounds_and_clips_only_there():
    np.testing.assert_array_equal(to_pcm16(np.array([0.4, -0.6, 40000.0, -40000.0, 32767.4])),
                                  [0, -1, 32767, -32768, 32767])


def test_export_keeps_16bit_clips_exact_and_other_depths_at_24_bits(corpus, tmp_path):
    """``wav2pix data export``: a 16 kHz 16-bit clip is copied sample for sample; a float clip peaking at 4.0 and a
    24-bit clip 72 dB down become 24-bit FLAC that give the model the same input (no clipping, no 16-bit rounding)."""
    import soundfile as sf

    from generator.data.export import SplitSelection, export_subset
    from generator.data.manifest import read_manifest

    manifest = read_manifest(corpus.manifest)
    split = manifest.pairs[0].split
    sources = [p.audio for p in manifest.select(split).pairs[:3]]
    loud = speechlike() * 4.0 / 0.9
    sf.write(sources[1], loud, 16_000, subtype="FLOAT")
    sf.write(sources[2], speechlike() * 10 ** (-72 / 20), 16_000, subtype="PCM_24")
    originals = {s: read_audio(s) for s in sources}
    inputs = {s: load_speech(s, 0.3) for s in sources}
    exported = read_manifest(export_subset(manifest, [SplitSelection(split)], tmp_path / "out"))
    copies = dict(zip(sources, (p.audio for p in exported.pairs), strict=False))  # the first 3, in the split's order
    first = copies[sources[0]]
    assert sf.info(str(first)).subtype == "PCM_16"
    np.testing.assert_array_equal(read_audio(first), originals[sources[0]])
    for source in sources[1:]:
        copy = copies[source]
        assert sf.info(str(copy)).subtype == "PCM_24"
        np.testing.assert_allclose(load_speech(copy, 0.3), inputs[source], atol=2e-3)
