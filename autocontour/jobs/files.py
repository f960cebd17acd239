"""The file jobs behind ``autocontour info``, ``convert`` and ``model``: look at and convert files.

``info`` describes what a file or folder holds (series, grids, ROIs) from the headers where it
can; ``convert`` writes an image in another format (atomically, never over an existing file
unless asked); ``model`` describes a model file or checkpoint (members, per-organ rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocontour.io.formats import read_volume, write_volume
from autocontour.io.inspect import describe
from autocontour.io.volume import Volume
from autocontour.jobs.checks import check_input, check_output_file


def describe_file(path: str | Path) -> dict[str, Any]:
    """A JSON-serialisable description of a DICOM folder/zip/file, NIfTI, NRRD or HDF5.

    Raises:
        InvalidInputError: the path does not exist or is not a readable image file.
    """
    return describe(path)


@dataclass(frozen=True)
class ConvertRequest:
    """An image to write in another format.

    Attributes:
        input: DICOM folder/zip, .nii/.nii.gz, .nrrd, .h5.
        output: a path ending .nii/.nii.gz/.nrrd/.h5, or a folder for a DICOM series.
        series: SeriesInstanceUID or SeriesNumber when the input holds several series.
        modality: "CT" or "MR" for DICOM output from a format that does not record it.
        overwrite: replace an existing output.
    """

    input: str | Path
    output: str | Path
    series: str | None = None
    modality: str | None = None
    overwrite: bool = False


@dataclass
class ConvertResult:
    """Where the image went, the image as read, and what was noticed reading it."""

    output: Path
    volume: Volume
    warnings: list[str] = field(default_factory=list)


def convert(request: ConvertRequest) -> ConvertResult:
    """Read the input and write it in the output's format.

    Raises:
        InvalidInputError: an unreadable input, or an output format that cannot hold it.
        OutputExistsError: the output exists and ``overwrite`` is False (nothing written).
    """
    check_input(request.input)
    check_output_file(request.output, request.overwrite)
    warnings: list[str] = []
    volume = read_volume(request.input, series=request.series, warnings=warnings)
    if request.modality:
        volume = volume.with_array(volume.array, modality=request.modality)
    out = write_volume(volume, request.output, overwrite=request.overwrite)
    return ConvertResult(Path(out), volume, warnings)


@dataclass
class ModelDescription:
    """A model's name, provenance, members and per-organ rule (as a table)."""

    name: str
    trained_with: str
    recipe: str
    members: dict[str, str]
    rule_table: str


def describe_model(model: str | Path | None = None) -> ModelDescription:
    """Describe a model file or training checkpoint (None: the shipped model).

    Raises:
        InvalidInputError: an unreadable model file.
    """
    from autocontour.jobs.prediction import load_contourer

    loaded = load_contourer(model, "cpu").model
    members = {n: type(m.net).__name__ + (f", region {'x'.join(map(str, m.roi.size))}"
                                          if m.roi else "")
               for n, m in loaded.members.items()}
    return ModelDescription(loaded.name, str(loaded.info.get("autocontour_version", "?")),
                            loaded.recipe.name, members, loaded.rule_table())


def list_models() -> list[dict[str, Any]]:
    """The shipped models: name, site, organs, training data, validation and fresh-test Dice,
    size and the command that rebuilt it (``autocontour model list``; no PyTorch needed)."""
    from autocontour.inference.catalogue import shipped_models

    return [m.summary() for m in shipped_models()]

