"""``autocontour dataset import``: cases from a source folder into a data set folder.

The import writes the folder's training cache, manifest and import report, then its fingerprint
and the recipe chosen from it (file names: :mod:`autocontour.data.folder`), so a data set
imported from Python is the same as one imported by the command.

One bad case never stops an import: it is skipped and the report says why. A case whose source
files have not changed since the last import is not read again; a case whose content changed
is kept as stored unless ``replace_changed`` is given. Nothing stored is lost on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from autocontour.data.cache import content_hash
from autocontour.data.folder import DatasetFolder
from autocontour.data.sources import find_cases
from autocontour.errors import InvalidInputError
from autocontour.organs import OrganSet

__all__ = ["ImportReport", "import_dataset"]


@dataclass
class ImportReport:
    source: str
    layout: str
    organ_set: str
    imported: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, dict[str, str]] = field(default_factory=dict)
    overlaps: dict[str, list] = field(default_factory=dict)

    def summary(self) -> str:
        head = (f"{self.source} ({self.layout}, organ set {self.organ_set}): "
                f"{len(self.imported)} imported, {len(self.replaced)} replaced, "
                f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped")
        lines = [head]
        lines += [f"  skipped {cid}: {why}" for cid, why in self.skipped.items()]
        for cid, names in self.unmapped.items():
            lines.append(f"  {cid}: ROI names not mapped: " + "; ".join(
                f"{n!r} ({why})" for n, why in names.items()))
        return "\n".join(lines)


def import_dataset(src: str | Path, out: str | Path, organs: OrganSet | None = None,
                   layout: str = "auto", replace_changed: bool = False,
                   progress: bool = True, modality: str = "CT",
                   fingerprint: bool = True,
                   on_case: Callable[[str, int, int], None] | None = None) -> ImportReport:
    """Import every case under ``src`` into the data set folder ``out``.

    ``modality`` is given to images whose file does not say (NIfTI, NRRD): DICOM and nnU-Net's
    ``channel_names`` say it themselves. With ``fingerprint`` (the default) the data set is then
    fingerprinted and the fingerprint and the recipe chosen from it are saved
    (:meth:`DatasetFolder.compute_fingerprint`), as ``autocontour dataset import`` does.
    ``on_case`` is called with (case ID, cases done, cases in all) after each case.

    Raises:
        InvalidInputError: the source is not a known layout, or no case at all could be
            imported (an empty data set); the report then lists every case's reason. Also a
            data set that cannot be fingerprinted (mixed modalities, say): the cases, manifest
            and report are saved by then.
    """
    folder = DatasetFolder(out)
    layout, organs, sources = find_cases(src, organs, layout)
    report = ImportReport(str(src), layout, organs.name)
    first_seen: dict[str, int] = {}
    with folder.cache_writer(organs) as writer:
        for index, source in enumerate(tqdm(sources, desc="import", unit="case",
                                            disable=not progress)):
            cid = source.case_id
            if on_case is not None and index:
                on_case(sources[index - 1].case_id, index, len(sources))
            if cid in first_seen:
                report.skipped[f"{cid} (#{index + 1})"] = (
                    f"duplicate case ID {cid!r}: also case #{first_seen[cid] + 1} of the source")
                continue
            first_seen[cid] = index
            signature = source.signature()
            if writer.stored_signature(cid) == signature:
                report.unchanged.append(cid)
                continue
            try:
                case = source.load()
                case.images = [v if v.modality else v.with_array(v.array, modality=modality)
                               for v in case.images]
                if not case.labels.present():
                    raise InvalidInputError(f"case {cid}: the label map is empty (no organ of "
                                            f"set {organs.name!r} has a voxel)")
                digest = content_hash(case.images, case.labels)
                stored = writer.stored_hash(cid)
                if stored == digest:
                    writer.set_signature(cid, signature)
                    report.unchanged.append(cid)
                    continue
                writer.add(cid, case.images, case.labels, source=";".join(
                    str(f) for f in source.files[:3]), digest=digest, replace=replace_changed,
                    signature=signature)
            except InvalidInputError as exc:
                report.skipped[cid] = str(exc)
                continue
            (report.replaced if stored else report.imported).append(cid)
            if case.notes.get("unmapped"):
                report.unmapped[cid] = case.notes["unmapped"]
            if case.notes.get("overlaps"):
                report.overlaps[cid] = case.notes["overlaps"]
    if on_case is not None and sources:
        on_case(sources[-1].case_id, len(sources), len(sources))
    cache = folder.cache()
    folder.write_manifest(cache)
    folder.write_import_report(asdict(report))
    if not cache.case_ids:
        raise InvalidInputError(f"{src}: no case could be imported, the data set is empty: "
                                + "; ".join(f"{c}: {w}" for c, w in report.skipped.items()))
    if fingerprint:
        folder.compute_fingerprint()
    return report
