"""The ``autocontour`` command: one sub-command per job.

Every user-fixable problem surfaces as one line on stderr and a non-zero exit code (2), never a
traceback; ``--debug`` shows the traceback for bug reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autocontour import __version__
from autocontour.errors import AutocontourError


def _shape(text: str) -> tuple[int, int, int]:
    """'512x512x160' (columns x rows x slices, as scanners state it) -> (z, y, x)."""
    try:
        x, y, z = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 128x128x64 (X x Y x Z), got {text!r}")
    if min(x, y, z) < 1:
        raise argparse.ArgumentTypeError(f"shape sizes must be positive, got {text!r}")
    return z, y, x


def _cmd_phantom(args: argparse.Namespace) -> int:
    from autocontour.phantoms.export import write_cases
    manifest = write_cases(args.site, args.cases, Path(args.out), seed=args.seed,
                           shape=args.shape, sex=args.sex, dicom=not args.no_dicom,
                           progress=not args.quiet)
    print(f"wrote {len(manifest['cases'])} {manifest['site']} phantom case(s) to {args.out}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from autocontour.io.inspect import describe, format_description
    info = describe(args.path)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from autocontour.io import read_volume, write_volume
    warnings: list[str] = []
    volume = read_volume(args.input, series=args.series, warnings=warnings)
    if args.modality:
        volume = volume.with_array(volume.array, modality=args.modality)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    out = write_volume(volume, args.output, overwrite=args.overwrite)
    z, y, x = volume.shape
    print(f"{args.input} -> {out}: {x}x{y}x{z}, spacing "
          f"{'x'.join(f'{s:g}' for s in volume.spacing)} mm, {volume.geometry.orientation_code}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from autocontour.inference import Contourer, write_outputs
    from autocontour.io import read_volume
    warnings: list[str] = []
    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        from autocontour.errors import OutputExistsError
        raise OutputExistsError(f"{out}: already holds files; choose another --output or pass "
                                "--overwrite (nothing was read or written)")
    contourer = (Contourer.from_checkpoint(args.model, args.device) if args.model
                 else Contourer.default(args.device))
    ct = read_volume(args.input, series=args.series, warnings=warnings)
    organs = [o for part in args.organs for o in part.split(",") if o] if args.organs else None
    prediction = contourer.run(ct, tta=args.tta, organs=organs, progress=not args.quiet,
                               name=str(args.input))
    prediction.warnings[:0] = warnings
    report = write_outputs(prediction, ct, out, source=str(args.input), overwrite=args.overwrite)
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.input}: {len(report['organs'])} organ(s) contoured with "
          f"{contourer.model.name} in {report['seconds']['total']:.1f} s -> {out}/")
    for organ in report["organs"]:
        print(f"  {organ['name']:<18}{organ['volume_cc']:>10.2f} cm3")
    if report["organs_not_found"]:
        print(f"  not found: {', '.join(report['organs_not_found'])}")
    print("  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in report["seconds"].items()
                                   if k != "total"))
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from autocontour.inference import Contourer
    contourer = (Contourer.from_checkpoint(args.model) if args.model else Contourer.default())
    model = contourer.model
    print(f"model {model.name} (trained with autocontour "
          f"{model.info.get('autocontour_version', '?')}), recipe {model.recipe.name}, "
          f"members: " + ", ".join(f"{n} ({type(m.net).__name__}"
                                   f"{', region ' + 'x'.join(map(str, m.roi.size)) if m.roi else ''})"
                                   for n, m in model.members.items()))
    print(model.rule_table())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from autocontour.demo import run_demo
    run_demo(Path(args.out), seed=args.seed, shape=args.shape, overwrite=args.overwrite,
             model=args.model, tta=args.tta)
    return 0


def _cmd_dataset_import(args: argparse.Namespace) -> int:
    from autocontour.data.importer import import_dataset
    from autocontour.organs import get_organ_set
    organs = get_organ_set(args.organs) if args.organs else None
    report = import_dataset(args.source, Path(args.out), organs=organs, layout=args.layout,
                            replace_changed=args.replace_changed, progress=not args.quiet,
                            modality=args.modality)
    print(report.summary())
    _fingerprint(Path(args.out))
    return 0


def _fingerprint(dataset: Path) -> None:
    """Compute, save and print the fingerprint and the recipe chosen from it."""
    from autocontour.data.cache import CaseCache
    from autocontour.data.fingerprint import compute_fingerprint, recipe_from_fingerprint
    from autocontour.data.importer import CACHE_NAME, write_json
    cache = CaseCache(dataset / CACHE_NAME)
    fingerprint = compute_fingerprint((cid, *cache.load(cid)) for cid in cache.case_ids)
    write_json(dataset / "fingerprint.json", fingerprint.to_dict())
    recipe = recipe_from_fingerprint(fingerprint)
    write_json(dataset / "recipe.json", recipe.to_dict())
    print(fingerprint.table())
    print(f"recipe chosen from the fingerprint: {recipe.name} (saved to {dataset / 'recipe.json'})")


def _cmd_dataset_fingerprint(args: argparse.Namespace) -> int:
    _fingerprint(Path(args.dataset))
    return 0


def _cmd_dataset_split(args: argparse.Namespace) -> int:
    from autocontour.data.cache import CaseCache
    from autocontour.data.importer import CACHE_NAME
    from autocontour.data.splits import make_splits, save_splits, splits_path
    cache = CaseCache(Path(args.dataset) / CACHE_NAME)
    splits = make_splits({cid: cache.present(cid) for cid in cache.case_ids}, args.folds,
                         seed=args.seed)
    path = splits_path(Path(args.dataset), args.folds)
    if path.exists() and not args.overwrite:
        from autocontour.errors import OutputExistsError
        raise OutputExistsError(f"{path}: splits exist and models may use them; pass "
                                "--overwrite to replace them")
    save_splits(splits, path)
    for k, fold in enumerate(splits):
        print(f"fold {k}: {len(fold['train'])} train, {len(fold['val'])} val: "
              f"{', '.join(fold['val'])}")
    print(f"saved {path}")
    return 0


def _cmd_dataset_export(args: argparse.Namespace) -> int:
    from autocontour.data.cache import CaseCache
    from autocontour.data.importer import CACHE_NAME
    from autocontour.data.nnunet import export_nnunet
    cache = CaseCache(Path(args.dataset) / CACHE_NAME)
    cases = [(cid, *cache.load_channels(cid)) for cid in cache.case_ids]
    out = export_nnunet(cases, cache.organs, Path(args.nnunet), dataset_name=args.name)
    print(f"wrote {len(cases)} case(s) in the nnU-Net raw layout to {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from autocontour.evaluate_files import run_evaluation
    from autocontour.evaluation.report import EmptyRule, summary_markdown
    from autocontour.evaluation.stats import compare_markdown
    from autocontour.organs import get_organ_set
    report = run_evaluation(args.pred, args.gt, get_organ_set(args.organs), out=args.out,
                            tolerance_mm=args.tolerance, compare=args.compare,
                            empty_rule=EmptyRule(args.empty_distance), overwrite=args.overwrite,
                            progress=not args.quiet)
    cases = len({r["case"] for r in report.rows})
    print(f"{args.pred} vs {args.gt}: {cases} case(s), {len(report.summary)} organ(s), "
          f"mean ± sd over cases")
    print(summary_markdown(report.summary, args.tolerance))
    if args.compare:
        print(f"\nA = {args.pred}, B = {args.compare}: paired Wilcoxon signed-rank test of Dice "
              "(HD95 and surface Dice in the report)")
        print(compare_markdown(report.comparisons["dice"]))
    for path in report.written:
        print(f"wrote {path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from autocontour.training import TrainConfig, run_folds
    from autocontour.training.distributed import distributed_session, env_from_environment
    config = TrainConfig.from_yaml(args.config)
    if args.device:
        config = replace(config, device=args.device)
    folds = args.folds or (config.fold if args.fold is None else args.fold)
    with distributed_session():
        results = run_folds(config, folds, resume=args.resume, progress=not args.quiet)
    if env_from_environment().is_main:
        for fold, result in results.items():
            best = "none" if result.best_metric is None else f"{result.best_metric:.4f}"
            print(f"fold {fold}: {result.epochs} epochs ({result.stopped}), best mean Dice "
                  f"{best} at epoch {result.best_epoch}; checkpoints in {result.out}")
    return 0


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="import, inspect, split and export training data")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    q = dsub.add_parser("import", help="import cases into a data set folder (cache + manifest)")
    q.add_argument("source", help="folder: DICOM case folders, NIfTI pairs or nnU-Net raw")
    q.add_argument("--out", required=True, help="data set folder (created or added to)")
    q.add_argument("--organs", default=None,
                   help="organ set: head-neck, pelvis, chest (default: guessed from ROI names)")
    q.add_argument("--layout", default="auto", choices=["auto", "dicom", "nifti", "nnunet"])
    q.add_argument("--modality", default="CT", choices=["CT", "MR"],
                   help="modality of NIfTI/NRRD images, which do not record it (default: CT)")
    q.add_argument("--replace-changed", action="store_true",
                   help="replace stored cases whose content changed (default: keep them)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_dataset_import)
    q = dsub.add_parser("fingerprint", help="print and save the data set fingerprint")
    q.add_argument("dataset", help="data set folder")
    q.set_defaults(func=_cmd_dataset_fingerprint)
    q = dsub.add_parser("split", help="k-fold splits by case, saved for every model")
    q.add_argument("dataset", help="data set folder")
    q.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true", help="replace existing splits")
    q.set_defaults(func=_cmd_dataset_split)
    q = dsub.add_parser("export", help="write the data set in another tool's layout")
    q.add_argument("dataset", help="data set folder")
    q.add_argument("--nnunet", required=True, help="output folder for the nnU-Net raw layout")
    q.add_argument("--name", default="autocontour", help="data set name in dataset.json")
    q.set_defaults(func=_cmd_dataset_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autocontour", description="Radiotherapy auto-contouring: CT in, RTSTRUCT out.")
    parser.add_argument("--version", action="version", version=f"autocontour {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("predict", help="contour a CT: RTSTRUCT, DICOM-SEG, NIfTI, overview, report")
    p.add_argument("input", help="CT as a DICOM series folder or zip, NIfTI, NRRD or HDF5")
    p.add_argument("-o", "--output", required=True, help="output folder (must be new or empty)")
    p.add_argument("--model", default=None,
                   help="model file or training checkpoint (default: the shipped model)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: also the left-right mirrored CT (about 2x time)")
    p.add_argument("--organs", nargs="+", default=None,
                   help="only these organs (names of the model's organ set, comma or space)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--series", default=None, help="SeriesInstanceUID or SeriesNumber to read")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("model", help="show a model: members, per-organ rule, validation Dice")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped one)")
    p.set_defaults(func=_cmd_model)

    p = sub.add_parser("demo", help="run the main job on an embedded phantom case (no download)")
    p.add_argument("--out", default="autocontour-demo", help="output folder")
    p.add_argument("--seed", type=int, default=90001, help="phantom seed (default: %(default)s)")
    p.add_argument("--shape", type=_shape, default=None, help="grid X x Y x Z, e.g. 128x128x64")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo output")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (mirrored CT)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("phantom", help="write synthetic CT/MR/RTSTRUCT phantom cases")
    p.add_argument("--site", required=True, help="head-neck, pelvis or chest")
    p.add_argument("--cases", type=int, default=1, help="number of cases (default: 1)")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per case)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first case; case i uses seed+i")
    p.add_argument("--shape", type=_shape, default=None,
                   help="grid X x Y x Z (e.g. 512x512x160); default: small test size")
    p.add_argument("--sex", choices=["male", "female"], default=None,
                   help="pelvis only: male (prostate) or female (cervix CTV); default: by seed")
    p.add_argument("--no-dicom", action="store_true", help="write NIfTI only (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    _add_dataset(sub)

    p = sub.add_parser("evaluate", help="score predicted contours against the truth per organ")
    p.add_argument("pred", help="predicted label map (NIfTI/NRRD/HDF5) or a folder of cases")
    p.add_argument("gt", help="truth label map or folder: <case>.nii.gz or <case>/label.nii.gz")
    p.add_argument("--organs", required=True, help="organ set: head-neck, pelvis, chest")
    p.add_argument("--out", default=None, help="folder for CSV/Markdown tables and box plots")
    p.add_argument("--tolerance", type=float, default=2.0,
                   help="surface Dice tolerance in mm (default: %(default)s)")
    p.add_argument("--compare", default=None, metavar="PRED_B",
                   help="a second prediction: paired Wilcoxon tests per organ against PRED")
    p.add_argument("--empty-distance", choices=["exclude", "diagonal"], default="exclude",
                   help="HD95/ASSD of an organ empty on one side: left out of means and "
                        "counted (default), or the image diagonal in mm")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train", help="train a segmentation network (one fold or k-fold)")
    p.add_argument("config", help="training config YAML (see configs/)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--fold", type=int, default=None, help="train this fold (default: config)")
    which.add_argument("--folds", choices=["all"], default=None,
                       help="'all': train every fold and write the cross-validation summary")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="override the config's device")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("info", help="show what a file or folder holds")
    p.add_argument("path", help="DICOM folder/zip/file, NIfTI, NRRD or HDF5")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("convert", help="convert between DICOM series, NIfTI, NRRD and HDF5")
    p.add_argument("input", help="DICOM folder/zip, .nii/.nii.gz, .nrrd, .h5")
    p.add_argument("output", help="a path ending .nii/.nii.gz/.nrrd/.h5, or a folder for DICOM")
    p.add_argument("--series", default=None, help="SeriesInstanceUID or SeriesNumber to read")
    p.add_argument("--modality", choices=["CT", "MR"], default=None,
                   help="modality for DICOM output from NIfTI/NRRD (default: CT)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AutocontourError as exc:
        if args.debug:
            raise
        print(f"autocontour: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autocontour: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
