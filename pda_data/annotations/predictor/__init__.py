"""The anime 56-point landmark predictor: a small heatmap network trained from the first annotations.

It pre-annotates new portraits (``landmarks bootstrap --predictor``), checks annotators' work
(``landmarks check --predictor``) and orders unlabelled images by its uncertainty (active learning).
Modules: :mod:`~.crop` (detector box -> square face crop, the frame both training and inference use),
:mod:`~.net` (the network), :mod:`~.augment` (albumentations plus the schema's flip), :mod:`~.train`
(training and the held-out report), :mod:`~.model` (safetensors + JSON, prediction with a confidence),
:mod:`~.nme` (the normalised mean error).

The network is written here rather than taken from :mod:`pda_train.nets`: ``pda_data`` never imports
``pda_train`` (the CLI is ``pda-data landmarks train-predictor``), and the PDA generators have no heatmap
head.
torch is imported by these modules only, which the CLI imports inside its commands.
"""

# Training defaults, here (no torch) so that the command line shows them without importing the trainer.
DEFAULT_EPOCHS = 60
DEFAULT_BATCH = 16
DEFAULT_SIZE = 128
DEFAULT_WIDTH = 16
DEFAULT_VAL_FRACTION = 0.1
