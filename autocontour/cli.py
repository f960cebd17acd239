"""The ``autocontour`` command: one sub-command per job.

Every user-fixable problem surfaces as one line on stderr and a non-zero exit code (2), never a
traceback; ``--debug`` shows the traceback for bug reports. That includes bad options (argparse's
errors are one line too), files that cannot be written (an ``OSError``: the path and the reason)
and a ``ValueError`` from a job. A command first checks its paths with the light
:mod:`autocontour.jobs.checks` and only then imports its job (and with it PyTorch), so a bad path
is refused in well under a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Self

from autocontour import __version__
from autocontour.errors import AutocontourError
from autocontour.jobs.base import default_threads
from autocontour.jobs.checks import (
    check_config,
    check_dataset,
    check_exists,
    check_file,
    check_folder,
    check_import_source,
    check_input,
    check_model,
    check_output_file,
    check_output_folder,
)


def _at_least(minimum: int) -> Any:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (``autocontour: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("autocontour").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"autocontour: error: {where}{message} (see '{self.prog} --help')\n")


def _shape(text: str) -> tuple[int, int, int]:
    """'512x512x160' (columns x rows x slices, as scanners state it) -> (z, y, x)."""
    try:
        x, y, z = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 128x128x64 (X x Y x Z), got {text!r}")
    if min(x, y, z) < 1:
        raise argparse.ArgumentTypeError(f"shape sizes must be positive, got {text!r}")
    return z, y, x


class _Bar:
    """A job's progress reports as one progress bar on stderr (nothing when quiet).

    Messages printed while the bar is shown go through :meth:`write`, so they start on their
    own line instead of inside the bar; :func:`main` clears every open bar
    (:meth:`close_all`) before it prints an error.
    """

    _open: ClassVar[list[_Bar]] = []

    def __init__(self, desc: str, quiet: bool = False) -> None:
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, report: Any) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=1000, desc=self.desc, leave=False, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
            _Bar._open.append(self)
        self.bar.n = round(1000 * report.fraction)
        self.bar.set_postfix_str(f"{report.stage} {report.message}".strip()[:60])

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        """Clear the bar from the terminal (the next line printed starts at column 0)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self in _Bar._open:
            _Bar._open.remove(self)

    @classmethod
    def close_all(cls) -> None:
        """Clear every bar still shown (before an error line is printed)."""
        for bar in list(cls._open):
            bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cmd_phantom(args: argparse.Namespace) -> int:
    check_output_folder(args.out, what="--out", must_be_empty=False)
    from autocontour.jobs.phantoms import PhantomRequest, write_phantoms
    request = PhantomRequest(args.site, args.cases, Path(args.out), seed=args.seed,
                             shape=args.shape, sex=args.sex, dicom=not args.no_dicom)
    with _Bar("phantoms", args.quiet) as bar:
        result = write_phantoms(request, progress=bar)
    print(f"wrote {len(result.manifest['cases'])} {result.manifest['site']} phantom case(s) to "
          f"{args.out}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    check_input(args.path)
    from autocontour.io.inspect import format_description
    from autocontour.jobs.files import describe_file
    info = describe_file(args.path)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    check_input(args.input)
    check_output_file(args.output, args.overwrite)
    from autocontour.jobs.files import ConvertRequest, convert
    result = convert(ConvertRequest(args.input, args.output, series=args.series,
                                    modality=args.modality, overwrite=args.overwrite))
    volume = result.volume
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    z, y, x = volume.shape
    print(f"{args.input} -> {result.output}: {x}x{y}x{z}, spacing "
          f"{'x'.join(f'{s:g}' for s in volume.spacing)} mm, {volume.geometry.orientation_code}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    check_output_folder(args.output, args.overwrite)  # before PyTorch is imported
    check_input(args.input)
    if args.model is not None:
        check_model(args.model)
    from autocontour.jobs.prediction import PredictRequest, predict
    organs = tuple(o for part in args.organs for o in part.split(",") if o) if args.organs \
        else None
    request = PredictRequest(args.input, args.output, model=args.model, device=args.device,
                             tta=args.tta, organs=organs, series=args.series,
                             overwrite=args.overwrite, force=args.force,
                             threads=args.threads or default_threads(),
                             precision=args.precision, pseudo_mri=args.pseudo_mri)
    with _Bar("contour", args.quiet) as bar:
        result = predict(request, progress=bar)
    report, out = result.report, Path(args.output)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.input}: {len(report['organs'])} organ(s) contoured with "
          f"{result.model} in {report['seconds']['total']:.1f} s -> {out}/")
    if "pseudo_mri" in report["files"]:
        print(f"  inputs: {' + '.join(report['inputs'])}; pseudo-MRI: "
              f"{out / report['files']['pseudo_mri']}")
    if args.model is None:
        print(f"  model chosen: {result.choice['model']}: {result.choice['reason']}")
    sex = report.get("sex")
    if sex:
        print(f"  sex: {sex['sex'] or 'undecided'} (from {sex['source']}: {sex['detail']})")
    for organ in report["organs"]:
        flag = f"  ! {organ['flag']}" if "flag" in organ else ""
        print(f"  {organ['name']:<18}{organ['volume_cc']:>10.2f} cm3{flag}")
    for organ in report["organs_removed"]:
        print(f"  {organ['name']:<18}{'removed':>14}  ! {organ['reason']}")
    if report["organs_not_found"]:
        print(f"  not found: {', '.join(report['organs_not_found'])}")
    if report["safety"]["forced"]:
        print("  FORCED: the anatomy check refused this CT; it was contoured because of "
              "--force (the RTSTRUCT's series description says so)")
    print("  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in report["seconds"].items()
                                   if k != "total"))
    _QUICK_EXIT.ready = True
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    if args.model == "list":
        return _list_models(args.json)
    if args.model is not None:
        check_model(args.model)
    from autocontour.jobs.files import describe_model
    model = describe_model(args.model)
    print(f"model {model.name} (trained with autocontour {model.trained_with}), recipe "
          f"{model.recipe}, members: " + ", ".join(f"{n} ({kind})"
                                                   for n, kind in model.members.items()))
    print(model.rule_table)
    return 0


def _list_models(as_json: bool) -> int:
    from autocontour.jobs.files import list_models
    models = list_models()
    if as_json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("no shipped model is installed")
    for m in models:
        test = m["fresh_test"]
        tested = (f"{test['mean_dice']:.3f} on {test['cases']} fresh phantoms "
                  f"(seeds {test['seeds']})" if test else "not scored yet")
        print(f"{m['name']}  ({m['file']}, {m['size_mb']} MB): {m['site']} CT, "
              f"{len(m['organs'])} organs")
        print(f"  organs: {', '.join(m['organs'])}")
        print(f"  trained on {m['training_cases']} phantoms, validated on "
              f"{m['validation_cases']} (seeds {m['phantom_seeds'][0]}-{m['phantom_seeds'][1]})"
              f"; body regions: {', '.join(m['regions'])}")
        validated = "n/a" if m["validation_dice"] is None else f"{m['validation_dice']:.3f}"
        print(f"  mean Dice: validation {validated}, fresh test {tested}")
        print(f"  rebuild: {m['command']}")
    return 0


def _cmd_user_add(args: argparse.Namespace) -> int:
    from autocontour.jobs.accounts import AddUserRequest, add_user
    password = _read_password(args.password_stdin)
    result = add_user(AddUserRequest(args.name, password, home=args.home,
                                     database_url=args.database_url))
    print(f"user {result.name} added (id {result.user_id}) to the store at {result.home}")
    return 0


def _cmd_user_token(args: argparse.Namespace) -> int:
    from autocontour.jobs.accounts import AddTokenRequest, add_token

    token = add_token(AddTokenRequest(args.name, args.label, home=args.home,
                                      database_url=args.database_url))
    print(token)
    print(f"(a bearer token of {args.name}, labelled {args.label!r}; it is not kept and cannot be "
          "shown again: send it as 'Authorization: Bearer <token>')", file=sys.stderr)
    return 0


def _service_settings(args: argparse.Namespace) -> Any:
    from autocontour.service import load_settings

    return load_settings(home=args.home, database_url=args.database_url,
                         queue_url=args.queue_url, workers=args.workers, device=args.device,
                         threads=args.threads, max_upload_mb=getattr(args, "max_upload_mb", None),
                         host=getattr(args, "host", None), port=getattr(args, "port", None))


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _service_settings(args)
    announce = lambda line: print(line, file=sys.stderr)
    if args.dicom_node is None:
        from autocontour.service import serve

        serve(settings, announce=announce)
        return 0
    from autocontour.dicom_node import load_node_config, serve_with_node

    config = load_node_config(args.dicom_node or None, home=settings.home)
    serve_with_node(config, settings, announce=announce)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from autocontour.service import run_worker

    run_worker(_service_settings(args), announce=lambda line: print(line, file=sys.stderr))
    return 0


def _cmd_dicom_node(args: argparse.Namespace) -> int:
    from autocontour.dicom_node import load_node_config, run_node
    from autocontour.service import load_settings

    config = load_node_config(args.config, home=args.home, ae_title=args.ae_title, port=args.port,
                              host=args.host, tls_cert=args.tls_cert, tls_key=args.tls_key,
                              tls_ca=args.tls_ca)
    settings = load_settings(home=args.home, database_url=args.database_url,
                             queue_url=args.queue_url, workers=args.workers or 0,
                             device=args.device, threads=args.threads)
    run_node(config, settings, announce=lambda line: print(line, file=sys.stderr))
    return 0


def _cmd_dicom_node_status(args: argparse.Namespace) -> int:
    from autocontour.dicom_node import format_status, node_status

    status = node_status(getattr(args, "home", None), getattr(args, "database_url", None),
                         args.limit)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _add_dicom_node(sub: argparse._SubParsersAction) -> None:
    text = ("a DICOM node: receive CT series (C-STORE), contour them as cases of the service, "
            "send the RTSTRUCT (and SEG) back")
    p = sub.add_parser("dicom-node", help=text, description=text + ". The settings file (YAML) "
                       "names the owner, the accepted calling AE titles, the routing rules and "
                       "the destinations (README, 'The DICOM node'). The calling AE title allow-list "
                       "is not security on its own: use TLS (--tls-*) or a closed network.")
    p.add_argument("--config", default=None,
                   help="settings file (YAML; default: dicom-node.yaml in --home)")
    p.add_argument("--ae-title", default=None, help="our AE title (default: the settings', "
                                                    "else AUTOCONTOUR)")
    p.add_argument("--port", type=_at_least(0), default=None,
                   help="port to listen on (default: the settings', else 11112)")
    p.add_argument("--host", default=None, help="address to listen on (default: the "
                                                "settings', else 127.0.0.1: this machine only)")
    p.add_argument("--home", default=None, help="the store's folder (default $AUTOCONTOUR_HOME, "
                                                "else ~/.local/share/autocontour)")
    p.add_argument("--database-url", default=None, help="as for serve")
    p.add_argument("--queue-url", default=None, help="as for serve (the queue the service's "
                                                     "workers read)")
    p.add_argument("--workers", type=_at_least(0), default=None,
                   help="worker threads in this process (default 0: the service's workers "
                        "run the jobs)")
    p.add_argument("--device", default=None, help="of --workers: cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=_at_least(1), default=None,
                   help="of --workers: PyTorch CPU threads")
    p.add_argument("--tls-cert", default=None, help="TLS: our certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="TLS: its private key (PEM)")
    p.add_argument("--tls-ca", default=None,
                   help="TLS: callers must present a certificate this CA signed (mutual TLS)")
    p.set_defaults(func=_cmd_dicom_node)
    nsub = p.add_subparsers(dest="dicom_node_command", metavar="ACTION")
    q = nsub.add_parser("status", help="the series received, their jobs and the sends")
    q.add_argument("--home", default=argparse.SUPPRESS, help="the store's folder")
    q.add_argument("--database-url", default=argparse.SUPPRESS, help="as for serve")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("--limit", type=_at_least(1), default=50,
                   help="the newest N series (default 50)")
    q.set_defaults(func=_cmd_dicom_node_status)


def _add_pseudo_mri(sub: argparse._SubParsersAction) -> None:
    """``autocontour pseudo-mri train|convert``: the CT -> MR CycleGAN (spec D1-D4)."""

    def cmd_train(args: argparse.Namespace) -> int:
        check_config(args.config, "pseudo-MRI config")
        from autocontour.jobs.pseudo_mri import PseudoMRITrainRequest, train_pseudo_mri
        request = PseudoMRITrainRequest(args.config, resume=args.resume, device=args.device,
                                        steps=args.steps)
        with _Bar("pseudo-mri train", args.quiet) as bar:
            result = train_pseudo_mri(request, progress=bar)
        run, last = result.outcome, (result.outcome.history or [{}])[-1]
        losses = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step")
        print(f"trained {run.step} step(s) in {run.seconds:.1f} s -> {run.out}: model "
              f"{run.model}, checkpoint {run.checkpoint}, {len(run.samples)} sample grid(s) in "
              f"{run.out / 'samples'}")
        print(f"  last step: {losses}")
        return 0

    def cmd_convert(args: argparse.Namespace) -> int:
        check_output_folder(args.output, args.overwrite)  # before PyTorch is imported
        check_input(args.input)
        check_file(args.model, "pseudo-MRI model")
        from autocontour.jobs.pseudo_mri import PseudoMRIConvertRequest, convert_pseudo_mri
        request = PseudoMRIConvertRequest(args.input, args.output, args.model,
                                          series=args.series, overwrite=args.overwrite,
                                          device=args.device, batch_slices=args.batch)
        with _Bar("pseudo-mri", args.quiet) as bar:
            result = convert_pseudo_mri(request, progress=bar)
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        z, y, x = result.ct.shape
        print(f"{args.input} -> {result.output}: pseudo-MRI {x}x{y}x{z} on the CT's grid in "
              f"{sum(result.seconds.values()):.1f} s; NIfTI {result.nifti.name}, DICOM MR series "
              f"{result.dicom.name}/ (Frame of Reference "
              f"{result.dicom_series.frame_of_reference_uid})")
        return 0

    p = sub.add_parser("pseudo-mri", help="pseudo-MRI from CT: train the CycleGAN, convert a CT")
    psub = p.add_subparsers(dest="pseudo_mri_command", required=True, metavar="ACTION")
    q = psub.add_parser("train", help="train (or resume) a CT <-> MR CycleGAN on unpaired slices",
                        description="Train a CT <-> MR CycleGAN on unpaired 2-D slices. The "
                        "config (YAML or JSON) names the images ('phantoms' or 'ct_images' + "
                        "'mr_images'), the run folder 'out' and the switches "
                        "improved_generator, denoising_discriminator, adversarial_loss "
                        "(l1/mse) and identity_weight (README, 'Pseudo-MRI from CT').")
    q.add_argument("config", help="pseudo-MRI config (YAML or JSON; see configs/)")
    q.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    q.add_argument("--steps", type=_at_least(1), default=None,
                   help="override the config's number of steps (e.g. to extend a run)")
    q.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None,
                   help="override the config's device")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train)
    q = psub.add_parser("convert", help="a CT -> its pseudo-MRI (NIfTI + DICOM MR series) on "
                                        "the CT's grid")
    q.add_argument("input", help="CT as a DICOM series folder or zip, NIfTI, NRRD or HDF5")
    q.add_argument("-o", "--output", required=True,
                   help="output folder (must be new or empty): pseudo_mri.nii.gz, dicom/, "
                        "pseudo_mri.json")
    q.add_argument("--model", required=True,
                   help="model.pt (or checkpoint.pt) of 'autocontour pseudo-mri train'")
    q.add_argument("--series", default=None, help="SeriesInstanceUID or SeriesNumber to read")
    q.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="default: cpu")
    q.add_argument("--batch", type=_at_least(1), default=4,
                   help="slices per network call (default 4)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_convert)


def _add_synthesize(sub: argparse._SubParsersAction) -> None:
    """``autocontour synthesize``: new labelled multi-modal tuples from a trained model, and
    ``autocontour synthesize train CONFIG`` to train one (spec E, seed 003)."""

    def cmd_generate(args: argparse.Namespace) -> int:
        missing = [o for o, v in (("--model", args.model), ("--count", args.count),
                                  ("-o/--out", args.out)) if v is None]
        if missing:
            p.error(f"the following arguments are required: {', '.join(missing)} (or the "
                    "action 'train CONFIG')")
        check_output_folder(args.out, args.overwrite)  # before PyTorch is imported
        check_file(args.model, "synthesis model")
        from autocontour.jobs.synthesis import SynthesizeRequest, synthesize
        request = SynthesizeRequest(args.model, args.out, args.count, seed=args.seed,
                                    device=args.device, png=not args.no_png,
                                    overwrite=args.overwrite)
        with _Bar("synthesize", args.quiet) as bar:
            result = synthesize(request, progress=bar)
        mods = ", ".join(result.manifest["modalities"])
        print(f"wrote {len(result.cases)} synthetic tuple(s) ({mods}; structure map, mask, "
              f"lesion) to {result.out} in {result.seconds:.1f} s; {result.without_lesion} "
              "without a lesion")
        return 0

    def cmd_train(args: argparse.Namespace) -> int:
        check_config(args.config, "synthesis config")
        from autocontour.jobs.synthesis import SynthesisTrainRequest, train_synthesis_model
        request = SynthesisTrainRequest(args.config, resume=args.resume, device=args.device)
        with _Bar("synthesize train", args.quiet) as bar:
            result = train_synthesis_model(request, progress=bar)
        run = result.outcome
        model = result.config.ablation_model
        print(f"trained {run.step} step(s) in {run.seconds:.1f} s -> {run.out}: model "
              f"{run.model}{f' (ablation model {model})' if model else ''}, checkpoint "
              f"{run.checkpoint}, samples {run.samples}")
        return 0

    text = "synthesise labelled multi-modal images with lesions from a trained model"
    p = sub.add_parser(
        "synthesize", aliases=["synthesise"], help=text,
        description=text.capitalize() + " (seed 003): 'synthesize --model M --count N -o DIR' "
        "writes N tuples (structure map, organ mask, lesion label, one image per modality) as "
        "NIfTI + PNG with a dataset.json, a folder that can be used as a training data set; "
        "'synthesize train CONFIG' trains a model (README, 'Multi-modal synthesis').")
    p.add_argument("--model", default=None, help="model.pt (or checkpoint.pt) of "
                                                 "'autocontour synthesize train'")
    p.add_argument("--count", type=_at_least(1), default=None, help="number of tuples")
    p.add_argument("-o", "--out", default=None, help="output folder (must be new or empty)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the tuples (tuple k depends only on model, seed and k)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="default: cpu")
    p.add_argument("--no-png", action="store_true", help="NIfTI only")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)
    ssub = p.add_subparsers(dest="synthesize_command", required=False, metavar="ACTION")
    q = ssub.add_parser("train", help="train (or resume) a synthesis model from a config",
                        description="Train the structure-map generator (E_s, G_s, D_z, D_s, "
                        "G_m), the lesion segmenters, the modality converter and the "
                        "conditional generator G with its ACGAN critic, stage after stage. The "
                        "config (YAML or JSON) names the data folder 'data', the run folder "
                        "'out', the stage lengths and the switches structure_input, "
                        "mask_filter, noise_fusion, registration_loss, lesion_loss (or "
                        "'ablation: A'..'F'); see configs/synthesis_brain.yaml.")
    q.add_argument("config", help="synthesis config (YAML or JSON)")
    q.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    q.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None,
                   help="override the config's device")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train)


def _read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice at the terminal (not echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except (EOFError, KeyboardInterrupt):
        raise AutocontourError("no password given; nothing was changed") from None
    if again != first:
        raise AutocontourError("the two passwords differ; nothing was changed")
    return first


def _cmd_demo(args: argparse.Namespace) -> int:
    check_output_folder(args.out, args.overwrite, "--out")
    if args.model is not None:
        check_model(args.model)
    from autocontour.jobs.demo import DemoRequest, run_demo
    request = DemoRequest(Path(args.out), seed=args.seed, shape=args.shape, model=args.model,
                          tta=args.tta, overwrite=args.overwrite,
                          threads=args.threads or default_threads())
    with _Bar("demo") as bar:
        result = run_demo(request, progress=bar)
    _print_demo(result.report, result.out, result.model)
    _QUICK_EXIT.ready = True
    return 0


def _print_demo(result: dict[str, Any], out: Path, model: str) -> None:
    z, y, x = result["shape_zyx"]
    print(f"demo case {result['case']} (phantom seed {result['seed']}, never trained on): CT "
          f"{x}x{y}x{z} -> {out}/ct; contoured by {model}"
          f"{' with TTA' if result['tta'] else ''}; RTSTRUCT, SEG, NIfTI, overview.png and "
          f"report.json in {out}/contours")
    rule = result["model"]["rule"]
    print(f"{'organ':<18}{'from':<10}{'cm3':>9}{'truth cm3':>11}{'Dice':>8}{'HD95 mm':>9}")
    for r in result["organs"]:
        hd = f"{r['hd95_mm']:>9.1f}" if r["hd95_mm"] is not None else f"{'-':>9}"
        print(f"{r['organ']:<18}{rule.get(r['organ'], ''):<10}{r['volume_cc']:>9.2f}"
              f"{r['truth_cc']:>11.2f}{r['dice']:>8.3f}{hd}")
    print(f"mean Dice {result['mean_dice']:.3f} over {len(result['organs'])} organs, median "
          f"HD95 {result['median_hd95_mm']} mm" + (f"; missed: {', '.join(result['organs_missed'])}"
                                                   if result["organs_missed"] else ""))
    for w in result["warnings"]:
        print(f"warning: {w}")
    secs = result["seconds"]
    print(f"time: {secs['contour_total'] + secs['phantom_and_dicom'] + secs['read_ct']:.1f} s "
          "(" + ", ".join(f"{k.removeprefix('contour_')} {v:.2f}s" for k, v in secs.items()
                          if k != "contour_total") + ")")


def _cmd_dataset_import(args: argparse.Namespace) -> int:
    check_folder(args.source, "source folder")
    check_output_folder(args.out, what="--out", must_be_empty=False)
    check_import_source(args.source)
    from autocontour.errors import InvalidInputError
    from autocontour.jobs.dataset import ImportRequest, import_dataset
    request = ImportRequest(args.source, Path(args.out), organs=args.organs, layout=args.layout,
                            modality=args.modality, replace_changed=args.replace_changed)
    with _Bar("import", args.quiet) as bar:
        result = import_dataset(request, progress=bar)
    print(result.report.summary())
    if result.fingerprint_error:
        raise InvalidInputError(result.fingerprint_error)
    _print_fingerprint(result.fingerprint, result.recipe, result.recipe_path)
    return 0


def _print_fingerprint(fingerprint: Any, recipe: Any, path: Path) -> None:
    print(fingerprint.table())
    print(f"recipe chosen from the fingerprint: {recipe.name} (saved to {path})")


def _cmd_dataset_fingerprint(args: argparse.Namespace) -> int:
    check_dataset(args.dataset)
    from autocontour.jobs.dataset import fingerprint_dataset
    result = fingerprint_dataset(args.dataset)
    _print_fingerprint(result.fingerprint, result.recipe, result.recipe_path)
    return 0


def _cmd_dataset_split(args: argparse.Namespace) -> int:
    check_dataset(args.dataset)
    from autocontour.jobs.dataset import SplitRequest, split_dataset
    result = split_dataset(SplitRequest(args.dataset, args.folds, args.seed, args.overwrite))
    for k, fold in enumerate(result.splits):
        print(f"fold {k}: {len(fold['train'])} train, {len(fold['val'])} val: "
              f"{', '.join(fold['val'])}")
    print(f"saved {result.path}")
    return 0


def _cmd_dataset_export(args: argparse.Namespace) -> int:
    check_output_folder(args.nnunet, what="--nnunet", can_overwrite=False)
    check_dataset(args.dataset)
    from autocontour.jobs.dataset import ExportRequest, export_dataset
    result = export_dataset(ExportRequest(args.dataset, args.nnunet, args.name))
    print(f"wrote {result.cases} case(s) in the nnU-Net raw layout to {result.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    for path in (args.pred, args.gt, args.compare):
        if path is not None:
            check_exists(path)
    if args.out is not None:
        check_output_folder(args.out, what="--out", must_be_empty=False)
    from autocontour.jobs.label_files import check_evaluate_inputs  # before MONAI loads
    check_evaluate_inputs(args.pred, args.gt, args.compare, args.organs)
    from autocontour.evaluation.report import summary_markdown
    from autocontour.evaluation.stats import compare_markdown
    from autocontour.jobs.evaluation import EvaluateRequest, evaluate
    request = EvaluateRequest(args.pred, args.gt, args.organs, out=args.out,
                              tolerance_mm=args.tolerance, compare=args.compare,
                              empty_rule=args.empty_distance, overwrite=args.overwrite)
    with _Bar("evaluate", args.quiet) as bar:
        report = evaluate(request, progress=bar)
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
    check_config(args.config, "training config")
    from autocontour.jobs.training import TrainRequest, train
    request = TrainRequest(args.config, fold=args.fold, all_folds=args.folds == "all",
                           resume=args.resume, device=args.device)
    with _Bar("train", args.quiet) as bar:
        result = train(request, progress=bar)
    if result.is_main:
        for fold, fit in result.folds.items():
            best = "none" if fit.best_metric is None else f"{fit.best_metric:.4f}"
            print(f"fold {fold}: {fit.epochs} epochs ({fit.stopped}), best mean Dice "
                  f"{best} at epoch {fit.best_epoch}; checkpoints in {fit.out}")
    return 0


_RANKING_TEXT = {"model": "the segmenter's disagreement with the contour",
                 "qam": "the QAM's gain when the contour is replaced by the segmenter's",
                 "volume": "volume"}


def _cmd_dataset_audit(args: argparse.Namespace) -> int:
    check_dataset(args.dataset)
    check_output_folder(args.out, args.overwrite, what="--out")
    if args.run is not None:
        check_exists(args.run)
    from autocontour.jobs.audit import AuditRequest, audit_dataset
    from autocontour.jobs.base import use_threads
    use_threads(args.threads or default_threads())
    request = AuditRequest(args.dataset, args.out, run=args.run, epochs=args.epochs,
                           steps_per_epoch=args.steps, batch_size=args.batch,
                           patch_size=tuple(args.patch), channels=tuple(args.channels),
                           seed=args.seed, device=args.device, flag=args.flag,
                           patches=args.patches, ranking=args.rank, qam=args.qam,
                           overwrite=args.overwrite)
    with _Bar("audit", args.quiet) as bar:
        result = audit_dataset(request, progress=bar)
    shown = result.cases[:max(args.flag, 10)]
    print(f"{len(result.cases)} case(s) of {args.dataset}, most distrusted first (distrust by "
          f"{_RANKING_TEXT[args.rank]}: a robust z against the same organ in the other cases; "
          "outlier from 3.5):")
    print("rank  case                          distrust  most distrusted organs")
    for c in shown:
        organs = ", ".join(f"{o['organ']} {o['distrust']:.1f}" for o in c["organs"][:3])
        mark = " (outlier)" if c["outlier"] else ""
        print(f"{c['rank']:>4}  {c['case']:<28}  {c['distrust']:>8.2f}  {organs}{mark}")
    outliers = sum(c["outlier"] for c in result.cases)
    print(f"{outliers} outlier case(s); overviews of the top {len(result.overviews)} in "
          f"{result.out / 'overview'}; every contour in {result.out / 'organs.csv'}")
    return 0


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="import, inspect, split and export training data")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    q = dsub.add_parser("import", help="import cases into a data set folder (cache + manifest)")
    q.add_argument("source", help="folder: DICOM case folders, NIfTI pairs or nnU-Net raw")
    q.add_argument("--out", required=True, help="data set folder (created or added to)")
    q.add_argument("--organs", default=None,
                   help="organ set: head-neck, pelvis, chest (default: the one a phantom "
                   "folder's phantoms.json records, else guessed from ROI names)")
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
    q.add_argument("--folds", type=_at_least(2), default=5,
                   help="number of folds (default: 5)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true", help="replace existing splits")
    q.set_defaults(func=_cmd_dataset_split)
    q = dsub.add_parser("export", help="write the data set in another tool's layout")
    q.add_argument("dataset", help="data set folder")
    q.add_argument("--nnunet", required=True, help="output folder for the nnU-Net raw layout")
    q.add_argument("--name", default="autocontour", help="data set name in dataset.json")
    q.set_defaults(func=_cmd_dataset_export)
    q = dsub.add_parser(
        "audit", help="rank the cases and organs whose contours look wrong (quality control)",
        description="Train a segmenter on every case of the data set (or reuse a run), then "
        "rank the cases, and the organs in them, by distrust: the segmenter's disagreement "
        "with each contour (default), the QAM's own judgement (--qam) or volume outliers; "
        "writes audit.json, cases.csv, organs.csv and an overview image of each of the most "
        "distrusted cases.")
    q.add_argument("dataset", help="data set folder")
    q.add_argument("-o", "--out", required=True, help="folder to write (must not exist)")
    q.add_argument("--run", default=None,
                   help="reuse a run trained with the QAM on this data set (its folder or "
                   "last.pt) instead of training one")
    q.add_argument("--epochs", type=_at_least(1), default=20, help="training epochs (default 20)")
    q.add_argument("--steps", type=_at_least(1), default=25,
                   help="steps per epoch (default 25)")
    q.add_argument("--batch", type=_at_least(2), default=16,
                   help="patches per batch, weighed against each other by the QAM (default 16)")
    q.add_argument("--patch", type=_at_least(1), nargs=3, default=[1, 96, 96],
                   metavar=("Z", "Y", "X"),
                   help="training patch; Z 1 trains a 2-D network on slices (default 1 96 96)")
    q.add_argument("--channels", type=_at_least(1), nargs="+", default=[16, 32, 64, 128],
                   help="segmenter channels per level (default 16 32 64 128)")
    q.add_argument("--flag", type=_at_least(0), default=10,
                   help="cases given an overview image (default 10)")
    q.add_argument("--patches", type=_at_least(1), default=8,
                   help="patches the QAM scores per organ and case (default 8)")
    q.add_argument("--rank", default="model", choices=["model", "qam", "volume"],
                   help="rank by the segmenter's disagreement with the contours (default), by "
                   "the QAM's own judgement (needs --qam) or by volume outliers; audit.json "
                   "holds every ranking the run can give")
    q.add_argument("--qam", action="store_true",
                   help="train the QAM + OCM beside the segmenter (adds --rank qam; off by "
                   "default: it found known errors less well, see the README)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    q.add_argument("--threads", type=_at_least(1), default=None,
                   help="CPU threads (default: the CPUs this process may use)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_dataset_audit)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autocontour", description="Radiotherapy auto-contouring: CT in, RTSTRUCT out.")
    parser.add_argument("--version", action="version", version=f"autocontour {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("predict", help="contour a CT: RTSTRUCT, DICOM-SEG, NIfTI, overview, report")
    p.add_argument("input", help="CT as a DICOM series folder or zip, NIfTI, NRRD or HDF5")
    p.add_argument("-o", "--output", required=True, help="output folder (must be new or empty)")
    p.add_argument("--model", default=None,
                   help="a shipped model's name (autocontour model list), a model file or a "
                        "training checkpoint (default: the shipped model that fits the CT's "
                        "body region)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: also the left-right mirrored CT (about 2x time)")
    p.add_argument("--organs", nargs="+", default=None,
                   help="only these organs (names of the model's organ set, comma or space)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--series", default=None, help="SeriesInstanceUID or SeriesNumber to read")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--force", action="store_true",
                   help="contour a CT the anatomy check refuses (another body site); recorded "
                        "in report.json and the RTSTRUCT's series description")
    p.add_argument("--threads", type=int, default=None,
                   help="PyTorch CPU threads (default: the CPUs this process may use)")
    p.add_argument("--precision", choices=["auto", "fp32"], default="auto",
                   help="auto (default): the networks in the reduced precision the device "
                        "computes natively (float16 on CUDA, bfloat16 on a CPU with AVX512-BF16 "
                        "or AMX, else float32); fp32: float32 everywhere")
    p.add_argument("--pseudo-mri", action="store_true",
                   help="a CT + pseudo-MRI model: also write the pseudo-MRI its networks saw, on "
                        "the CT's grid (pseudo_mri.nii.gz; pseudo_mri/ as a DICOM MR series for "
                        "a DICOM CT); refused for a model that takes the CT alone")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("model", help="list the shipped models, or show one: members, per-organ "
                                     "rule, validation Dice")
    p.add_argument("model", nargs="?", default=None,
                   help="'list' (the shipped models, their organs, training data and Dice), a "
                        "shipped model's name, or a model file (default: head-neck)")
    p.add_argument("--json", action="store_true", help="with list: print JSON")
    p.set_defaults(func=_cmd_model)

    p = sub.add_parser("user", help="accounts of the case store (the service's users)")
    usub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    q = usub.add_parser("add", help="add a user; the password is asked for (or read from stdin)")
    q.add_argument("name", help="1-64 letters, digits or ._@-")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin (scripts)")
    q.add_argument("--home", default=None,
                   help="the store's folder (default $AUTOCONTOUR_HOME, else "
                        "~/.local/share/autocontour)")
    q.add_argument("--database-url", default=None,
                   help="SQLAlchemy URL, e.g. postgresql://... (default SQLite in --home)")
    q.set_defaults(func=_cmd_user_add)
    q = usub.add_parser("token", help="print a new bearer token of a user, for scripts")
    q.add_argument("name", help="the user")
    q.add_argument("--label", default="script", help="what the token is for (default: script)")
    q.add_argument("--home", default=None, help="the store's folder (as for add)")
    q.add_argument("--database-url", default=None, help="as for add")
    q.set_defaults(func=_cmd_user_token)

    for name, text in (("serve", "start the service: the HTTP API (and its worker threads)"),
                       ("worker", "run contouring jobs from the service's queue")):
        p = sub.add_parser(name, help=text, description=text + ". Every option can also be "
                           "set by an environment variable AUTOCONTOUR_<OPTION>, e.g. "
                           "AUTOCONTOUR_DATABASE_URL.")
        p.add_argument("--home", default=None,
                       help="the store's folder (default $AUTOCONTOUR_HOME, else "
                            "~/.local/share/autocontour)")
        p.add_argument("--database-url", default=None,
                       help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default "
                            "SQLite in --home)")
        p.add_argument("--queue-url", default=None,
                       help="redis://host:6379/0 for workers on other machines (default: a "
                            "SQLite queue in --home)")
        p.add_argument("--workers", type=_at_least(0), default=None,
                       help="worker threads (serve: in the server, 0 for none; default 1)")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default)")
        p.add_argument("--threads", type=_at_least(1), default=None,
                       help="PyTorch CPU threads (default: leave PyTorch's)")
        if name == "serve":
            p.add_argument("--host", default=None, help="address to listen on (default "
                                                        "127.0.0.1: this machine only)")
            p.add_argument("--port", type=_at_least(0), default=None, help="default 8000")
            p.add_argument("--max-upload-mb", type=float, default=None,
                           help="largest upload (default 8192)")
            p.add_argument("--dicom-node", nargs="?", const="", default=None, metavar="CONFIG",
                           help="also run the DICOM node in this process, with its settings "
                                "file (default: dicom-node.yaml in --home)")
        p.set_defaults(func=_cmd_serve if name == "serve" else _cmd_worker)

    _add_dicom_node(sub)
    _add_pseudo_mri(sub)
    _add_synthesize(sub)

    p = sub.add_parser("demo", help="run the main job on an embedded phantom case (no download)")
    p.add_argument("-o", "--out", default="autocontour-demo", help="output folder")
    p.add_argument("--seed", type=int, default=90001, help="phantom seed (default: %(default)s)")
    p.add_argument("--shape", type=_shape, default=None, help="grid X x Y x Z, e.g. 128x128x64")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo output")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (mirrored CT)")
    p.add_argument("--threads", type=int, default=None,
                   help="PyTorch CPU threads (default: the CPUs this process may use)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("phantom", help="write synthetic CT/MR/RTSTRUCT phantom cases")
    p.add_argument("--site", required=True,
                   help="head-neck, pelvis, thorax (3-D chest CT), chest (2-D radiograph) or "
                   "brain-lesion (2-D CT/T1/T2/FLAIR slice with tumours, lesion labels; NIfTI)")
    p.add_argument("--cases", type=_at_least(1), default=1,
                   help="number of cases (default: 1)")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per case)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first case; case i uses seed+i")
    p.add_argument("--shape", type=_shape, default=None,
                   help="grid X x Y x Z (e.g. 512x512x160; brain-lesion: 240x240x1); default: "
                   "small test size")
    p.add_argument("--sex", choices=["male", "female"], default=None,
                   help="pelvis only: male (prostate) or female (cervix CTV); default: by seed")
    p.add_argument("--no-dicom", action="store_true", help="write NIfTI only (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    _add_dataset(sub)

    p = sub.add_parser("evaluate", help="score predicted contours against the truth per organ")
    p.add_argument("pred", help="predicted label map (NIfTI/NRRD/HDF5) or a folder of cases")
    p.add_argument("gt", help="truth label map or folder: <case>.nii.gz or <case>/label.nii.gz")
    p.add_argument("--organs", default=None,
                   help="organ set: head-neck, pelvis, chest (default: the set the files "
                   "record, else the label values found, scored as 'label N')")
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


class _QuickExit:
    """Set by a command that has written and printed everything and started no process or
    thread that is still running (predict, demo): :func:`run` may then end the process without
    the interpreter's teardown, which takes about 0.8 s once PyTorch and MONAI are loaded."""

    ready = False


_QUICK_EXIT = _QuickExit()


def run() -> NoReturn:
    """The ``autocontour`` console command: :func:`main` with the process's arguments, then
    exit. After a successful predict or demo the process ends at once (``os._exit``, after
    flushing standard output, standard error and logging): every output file is closed and
    renamed into place by then, and nothing else is left to run."""
    code = main()
    if code == 0 and _QUICK_EXIT.ready:
        import logging
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    A problem the user can fix (an :class:`~autocontour.errors.AutocontourError`, an
    ``OSError`` such as a full disk or a folder that cannot be written, a ``ValueError``) is
    printed as one line, ``autocontour: error: <message>``, after any progress bar is cleared,
    and gives exit code 2; ``--debug`` raises it instead (with its traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (AutocontourError, OSError, ValueError) as exc:
        if args.debug:
            raise
        _Bar.close_all()
        print(f"autocontour: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _Bar.close_all()
        print("autocontour: interrupted", file=sys.stderr)
        return 130


def _message(exc: Exception) -> str:
    """One line for an error: the path and the reason of an ``OSError``, else its message."""
    if isinstance(exc, OSError) and not isinstance(exc, AutocontourError) and exc.strerror:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (AutocontourError, OSError)):
            text += " (--debug shows the traceback)"
    return " ".join(text.split("\n")).strip()


if __name__ == "__main__":
    run()
