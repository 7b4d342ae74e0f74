"""Wav2Pix training (reference notes §4-5): one D step then one G step per batch, LSGAN with the paper's terms.

Runs on CPU or CUDA, and on several GPUs under ``torchrun`` (DistributedDataParallel; each rank takes a strided share
of the seeded permutation). The whole training set is decoded into memory once. Each checkpoint folder
``OUT/epoch_NNNN/`` holds ``generator.safetensors`` + ``generator.json`` (loadable by every tool) and
``train_state.safetensors`` + ``train_state.json`` (discriminator, optimisers, RNG) for ``--resume``.

Modules: ``config`` (the options and their YAML file), ``step`` (one GAN update), ``state`` (what a checkpoint saves
and restores), ``loop`` (data on the device, batches, epochs, logging, checkpoint schedule).
"""

from generator.training.config import TrainConfig
from generator.training.loop import Wav2PixTrainer
from generator.training.step import Batch, GanStep

__all__ = ["Batch", "GanStep", "TrainConfig", "Wav2PixTrainer"]
