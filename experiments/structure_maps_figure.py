"""A figure like seed 003's figure 6: images, Sobel edges, structure maps and masks per modality.

On a brain-lesion phantom (synthetic data: no BRATS here), one row per modality (CT, T1, T2,
FLAIR), the columns: the image; the vertical- and horizontal-direction Sobel responses; the
structure map of Algorithm 1; the same with the original lesion's structure removed by its label;
the background mask of Algorithm 2 (white = background); the noise-fused map of eq. (12); the
lesion label. With the default parameters of :mod:`autocontour.synthesis.multimodal.structure`
unless told otherwise.

    python experiments/structure_maps_figure.py                 # seed 2 at 240x240 (1 mm), ~5 s
    python experiments/structure_maps_figure.py --size 128      # the size the experiments use

Writes ``structure_maps_<size>.png`` and ``structure_maps_<size>.json`` (the command, the
parameters and, per modality, the share of the organ covered by structure and the structure
removed with the lesion) to ``--out`` (default ``experiments/results/synthesis``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def main(argv: Sequence[str] | None = None) -> int:
    from autocontour.synthesis.multimodal import structure as st

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--alpha", type=float, default=st.ALPHA)
    parser.add_argument("--beta", type=float, default=st.BETA)
    parser.add_argument("--gamma", type=float, default=st.GAMMA)
    parser.add_argument("--mask-alpha", type=float, default=st.MASK_ALPHA)
    parser.add_argument("--enlarge", type=int, default=None,
                        help="p of Algorithm 2 in pixels (default: 4 per 128 pixels)")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/synthesis"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autocontour.phantoms.brain_lesion import MODALITIES, brain_lesion_case, to_unit

    p = args.enlarge if args.enlarge is not None else round(st.MASK_ENLARGE_PX * args.size / 128)
    case = brain_lesion_case(args.seed, size=args.size)
    lesion = case.lesion.array[0]
    rng = np.random.default_rng(args.seed)
    columns = ["image", "Sobel (vertical)", "Sobel (horizontal)", "structure map",
               "lesion removed", "mask (Alg. 2)", "noise fused (12)", "lesion label"]
    fig, axes = plt.subplots(len(MODALITIES), len(columns),
                             figsize=(2.0 * len(columns), 2.1 * len(MODALITIES)))
    stats: dict[str, dict[str, float]] = {}
    for row, modality in enumerate(MODALITIES):
        x = to_unit(case.images[modality].array[0], modality)
        edges = st.sobel_edges(x)
        kw = {"alpha": args.alpha, "beta": args.beta, "gamma": args.gamma}
        s_full = st.structure_map(x, **kw)
        s = st.structure_map(x, lesion, **kw)
        m = st.extract_mask(x, args.mask_alpha, p)
        fused = st.fuse_noise(s, m, st.fusion_noise(s.shape, rng))
        organ = m == 0
        stats[modality] = {
            "structure_share_of_organ": round(float(s[organ].mean()), 4),
            "structure_outside_organ_px": int(s[~organ].sum()),
            "structure_removed_with_lesion_px": int(s_full.sum() - s.sum()),
            "organ_px": int(organ.sum()),
        }
        panels = [(x, "gray", (0, 1)), (edges[0], "coolwarm", (-2, 2)),
                  (edges[1], "coolwarm", (-2, 2)), (s_full, "gray", (0, 1)), (s, "gray", (0, 1)),
                  (m, "gray", (0, 1)), (fused, "gray", (0, 1)), (lesion, "viridis", (0, 2))]
        for col, (image, cmap, (lo, hi)) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=9)
            if col == 0:
                ax.set_ylabel(modality, fontsize=10)
    fig.suptitle(f"Brain-lesion phantom {case.case_id} (synthetic), {args.size}x{args.size}: "
                 f"α={args.alpha}, β={args.beta}, γ={args.gamma}, σ1=σ2=1 (3x3); "
                 f"mask α={args.mask_alpha}, p={p}", fontsize=10)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"structure_maps_{args.size}.png"
    fig.savefig(png, dpi=80)
    record = {
        "command": "python experiments/structure_maps_figure.py " + shlex.join(
            sys.argv[1:] if argv is None else list(argv)),
        "data": "brain-lesion phantom (synthetic; autocontour.phantoms.brain_lesion)",
        "case": case.case_id,
        "size": args.size,
        "parameters": {"alpha": args.alpha, "beta": args.beta, "gamma": args.gamma,
                       "sigma1": st.SIGMA1, "sigma2": st.SIGMA2, "mask_alpha": args.mask_alpha,
                       "enlarge_p": p, "fusion_noise": [st.FUSION_LOW, st.FUSION_HIGH]},
        "per_modality": stats,
    }
    (args.out / f"structure_maps_{args.size}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {png}")
    for modality, values in stats.items():
        print(modality, values)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
