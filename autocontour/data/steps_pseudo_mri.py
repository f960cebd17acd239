"""Pseudo-MRI as a second image channel: the recipe step that derives it from the CT (spec D).

:class:`PseudoMRIChannel` runs a trained CT -> MR CycleGAN generator (``autocontour pseudo-mri
train``) on every axial slice of the CT it receives, still in HU, and appends the result as the
next image channel: the recipe's later intensity steps (clip, z-score) change the CT channel
only, later grid steps (crop, resample) move every channel alike
(:meth:`~autocontour.data.recipes.Recipe.apply`). So training and prediction run the very same
recipe and a data set stores only the CT.

The pseudo-MRI channel holds the generator's own output scale: [-1, 1], where the training MRs'
0.5 and 99.5 percentiles were -1 and 1 (:class:`Normalisation`), i.e. an MR normalisation that
is the same for every CT (no per-image statistics).

Reproducibility: the step records only the generator's SHA-256 (:attr:`PseudoMRIGenerator.
digest`, a hash of its content: network spec, weights and normalisation, not of the file it
came in). The weights travel inside every checkpoint and model file whose recipe holds the step
(``generators``, :mod:`autocontour.artifacts.files`), and :meth:`Recipe.bind
<autocontour.data.recipes.Recipe.bind>` hands them to the step; a generator that is missing or
whose content hashes otherwise is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from autocontour.data.steps import ChannelStep, IntensityRecord, SourceInfo
from autocontour.errors import InvalidInputError
from autocontour.io.volume import Volume

# PyTorch and the generator network load when a generator is first used, so that reading a
# recipe (a data set's, a model's) never imports them.
if TYPE_CHECKING:
    import torch
    from torch import nn

#: Values below this (HU) must occur in a CT the step converts (air); an image without any is
#: not a CT in HU (an MR, or a CT already rescaled).
_AIR_HU = -500.0


@dataclass(frozen=True)
class Normalisation:
    """The intensity mappings of a pseudo-MRI model (see :mod:`autocontour.synthesis.pseudo_mri`);
    saved in its checkpoint.

    Attributes:
        ct_window: HU range mapped onto [-1, 1] (values outside are clipped).
        mr_percentiles: per-volume percentiles of an MR mapped onto -1 and 1.
        mr_range: the MR values a pseudo-MR's -1 and 1 are mapped back to.
    """

    ct_window: tuple[float, float]
    mr_percentiles: tuple[float, float]
    mr_range: tuple[float, float] = (0.0, 1.0)

    def ct_to_unit(self, hu: np.ndarray) -> np.ndarray:
        lo, hi = self.ct_window
        return (2 * (np.clip(np.asarray(hu, np.float32), lo, hi) - lo) / (hi - lo) - 1
                ).astype(np.float32)

    def unit_to_ct(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.ct_window
        return ((np.asarray(x, np.float32) + 1) / 2 * (hi - lo) + lo).astype(np.float32)

    def mr_bounds(self, mr: np.ndarray) -> tuple[float, float]:
        """This MR volume's low and high percentile values."""
        lo, hi = (float(v) for v in np.percentile(mr, self.mr_percentiles))
        return lo, max(hi, lo + 1e-6)

    def mr_to_unit(self, mr: np.ndarray) -> np.ndarray:
        lo, hi = self.mr_bounds(mr)
        return np.clip(2 * (np.asarray(mr, np.float32) - lo) / (hi - lo) - 1, -1, 1
                       ).astype(np.float32)

    def unit_to_mr(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.mr_range
        return ((np.asarray(x, np.float32) + 1) / 2 * (hi - lo) + lo).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"ct_window": list(self.ct_window), "mr_percentiles": list(self.mr_percentiles),
                "mr_range": list(self.mr_range)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> Normalisation:
        def pair(key: str) -> tuple[float, float]:
            lo, hi = (float(v) for v in data[key])
            return lo, hi
        return cls(pair("ct_window"), pair("mr_percentiles"), pair("mr_range"))


def generator_digest(spec: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                     normalisation: Normalisation) -> str:
    """SHA-256 of a generator's content: its spec, its weights (names, types, shapes, bytes) and
    its normalisation; the same whichever file the generator was read from."""
    import torch

    h = hashlib.sha256()
    h.update(json.dumps({"spec": spec, "normalisation": normalisation.to_dict()},
                        sort_keys=True, default=str).encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class PseudoMRIGenerator:
    """A CT -> MR generator as plain values (what files embed) with its :attr:`digest`.

    Attributes:
        spec: ``{"network_class_name", "arch_kwargs"}`` (``models.cyclegan.gan_network_spec``).
        state: its weights.
        normalisation: the intensity mappings it was trained with.

    Raises:
        InvalidInputError: weights that do not fit the spec (a damaged generator).
    """

    spec: Mapping[str, Any]
    state: Mapping[str, torch.Tensor]
    normalisation: Normalisation
    digest: str = field(init=False)
    _nets: dict[str, nn.Module] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", json.loads(json.dumps(dict(self.spec))))
        object.__setattr__(self, "state", {k: v.detach().cpu() for k, v in self.state.items()})
        object.__setattr__(self, "digest", generator_digest(self.spec, self.state,
                                                            self.normalisation))
        object.__setattr__(self, "_nets", {})
        self.network("cpu")  # refuse a damaged generator now, not in the middle of a run

    def network(self, device: str | torch.device = "cpu") -> nn.Module:
        """The generator network on ``device``, in eval mode (built once per device).

        Raises:
            InvalidInputError: the weights do not fit the spec.
        """
        import torch

        from autocontour.models.cyclegan import gan_network_from_spec

        key = str(torch.device(device))
        if key not in self._nets:
            try:
                net = gan_network_from_spec(self.spec)
                net.load_state_dict(dict(self.state))
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise InvalidInputError(f"damaged pseudo-MRI generator {self.digest[:12]} "
                                        f"({str(exc).splitlines()[0][:120]})") from None
            self._nets[key] = net.eval().to(device)
        return self._nets[key]

    def translate(self, ct_hu: np.ndarray, batch_slices: int = 4,
                  device: str | torch.device = "cpu") -> np.ndarray:
        """The generator's output, in [-1, 1], for a CT (z, y, x) in HU, slice by slice."""
        from autocontour.models.cyclegan import translate_slices

        unit = self.normalisation.ct_to_unit(ct_hu)
        return translate_slices(unit, self.network(device), batch_slices, device)

    def to_payload(self) -> dict[str, Any]:
        """Plain values and tensors, for ``torch.save`` (read back by :meth:`from_payload`)."""
        return {"spec": dict(self.spec), "state": dict(self.state),
                "normalisation": self.normalisation.to_dict()}

    @classmethod
    def from_payload(cls, data: Any, where: str = "") -> PseudoMRIGenerator:
        """Rebuild from :meth:`to_payload` output.

        Raises:
            InvalidInputError: missing keys or weights that do not fit (naming ``where``).
        """
        try:
            return cls(data["spec"], data["state"], Normalisation.from_dict(data["normalisation"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            prefix = f"{where}: " if where else ""
            raise InvalidInputError(f"{prefix}damaged pseudo-MRI generator ({exc})") from None


def generators_by_digest(generators: Iterable[PseudoMRIGenerator]
                         ) -> dict[str, PseudoMRIGenerator]:
    """{digest: generator}."""
    return {g.digest: g for g in generators}


@dataclass(frozen=True)
class PseudoMRIChannel(ChannelStep):
    """Append the CT's pseudo-MRI as the next channel (module docstring).

    Attributes:
        generator: the SHA-256 (64 hex digits) of the CT -> MR generator
            (:attr:`PseudoMRIGenerator.digest`); the weights are bound to the step from the
            checkpoint or model file that holds the recipe (:meth:`bind`).
        batch_slices: axial slices per generator call (memory, not results).

    Raises:
        InvalidInputError: a digest that is not 64 hex digits, or ``batch_slices`` below 1.
    """

    kind: ClassVar[str] = "pseudo_mri"
    channel_name: ClassVar[str] = "pseudo-MRI"
    generator: str = ""
    batch_slices: int = 4

    def __post_init__(self) -> None:
        digest = str(self.generator).strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidInputError(f"pseudo_mri: generator must be the generator's SHA-256 (64 "
                                    f"hex digits), got {self.generator!r}")
        object.__setattr__(self, "generator", digest)
        if isinstance(self.batch_slices, bool) or not isinstance(self.batch_slices, int) \
                or self.batch_slices < 1:
            raise InvalidInputError(f"pseudo_mri: batch_slices must be a whole number of at "
                                    f"least 1, got {self.batch_slices!r}")
        object.__setattr__(self, "_bound", None)
        object.__setattr__(self, "_device", "cpu")

    def needs_source_values(self) -> bool:
        return True  # the generator reads HU

    def resources(self) -> tuple[str, ...]:
        return (self.generator,)

    @property
    def bound(self) -> PseudoMRIGenerator | None:
        """The generator given by :meth:`bind` (None: not bound)."""
        return self._bound

    def bind(self, resources: Mapping[str, Any], device: str | torch.device = "cpu",
             where: str = "") -> PseudoMRIChannel:
        """This step with its generator, taken from ``resources`` ({digest: generator}).

        Raises:
            InvalidInputError: ``resources`` has no generator of this digest (naming the ones it
                has: a generator whose content hashes otherwise is another generator).
        """
        found = resources.get(self.generator)
        if not isinstance(found, PseudoMRIGenerator) or found.digest != self.generator:
            held = [d[:12] for d, g in resources.items() if isinstance(g, PseudoMRIGenerator)]
            has = (f"holds generator {', '.join(held)} instead (its SHA-256 differs)" if held
                   else "holds none")
            prefix = f"{where}: " if where else ""
            raise InvalidInputError(
                f"{prefix}the recipe's pseudo-MRI step needs generator {self.generator[:12]}, "
                f"but {has}")
        import torch

        step = PseudoMRIChannel(self.generator, self.batch_slices)
        object.__setattr__(step, "_bound", found)
        object.__setattr__(step, "_device", str(torch.device(device)))
        return step

    def derive(self, image: Volume, source: SourceInfo) -> tuple[Volume, IntensityRecord]:
        """The pseudo-MRI of ``image`` (a CT in HU) on its grid, in [-1, 1], modality "MR".

        Raises:
            InvalidInputError: the step has no generator bound, or ``image`` has no air below
                -500 HU (not a CT in HU).
        """
        generator = self._bound
        if generator is None:
            raise InvalidInputError(f"the recipe's pseudo-MRI step has no generator "
                                    f"{self.generator[:12]} to run (read the recipe from the "
                                    "model or checkpoint that holds it)")
        low = float(np.min(image.array))
        if low > _AIR_HU:
            raise InvalidInputError(f"pseudo-MRI: the image does not look like a CT in HU (no "
                                    f"value below {_AIR_HU:g}; minimum {low:g})")
        out = generator.translate(np.asarray(image.array, np.float32), self.batch_slices,
                                  self._device)
        lo, hi = generator.normalisation.ct_window
        record = IntensityRecord(self.kind, image.geometry, image.geometry,
                                 {"ct_window_lower": lo, "ct_window_upper": hi})
        return image.with_array(out, modality="MR", dicom=None), record

