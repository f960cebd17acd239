"""What training makes and inference uses: the typed training config and the one file format.

Training (:mod:`autocontour.training`) writes checkpoints, model building writes model files,
and inference (:mod:`autocontour.inference`) reads both; the two are siblings that never import
each other, so what they share lives here, one layer below them:

* :class:`TrainConfig` and its parts: the frozen, validated run configuration (YAML in, saved in
  every checkpoint and read back typed).
* :func:`read_file` / :func:`write_file`: the one reader and writer of checkpoints and model
  files (envelope, version and keys checked; a missing or unknown key names the file).
* :func:`load_trained_network`: a checkpoint -> :class:`TrainedNetwork` (network, typed
  config, recipe, organ set); :func:`build_network`: a saved spec and weights -> a network.
"""

from autocontour.artifacts.config import (
    LossConfig,
    NetworkConfig,
    PlateauConfig,
    SampleWeightingConfig,
    SamplingConfig,
    TrainConfig,
)
from autocontour.artifacts.files import (
    CHECKPOINT,
    MODEL,
    TrainedNetwork,
    build_network,
    load_trained_network,
    read_file,
    trained_network,
    write_file,
)

__all__ = [
    "CHECKPOINT",
    "MODEL",
    "LossConfig",
    "NetworkConfig",
    "PlateauConfig",
    "SampleWeightingConfig",
    "SamplingConfig",
    "TrainConfig",
    "TrainedNetwork",
    "build_network",
    "load_trained_network",
    "read_file",
    "trained_network",
    "write_file",
]
