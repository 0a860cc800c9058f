"""The command line: ``python -m zfkit COMMAND ...`` (argument parsing only; the work is in modules).

Commands:
    table          print the layer table of a model, computed with the formula
    make-sample    write a generated VOC-format sample (shapes or photos; never VOC data)
    download-voc   download and verify Pascal VOC 2007
    voc-crops      crop every non-difficult object of a VOCdevkit into class folders
    train          train one model on a crops folder (resumable)
    compare        train AlexNet and ZFNet with the same recipe and seeds, write curves and a table
    export         copy a finished run's results into book/results/NAME with provenance
    record         train and export every run the chapters show (resumable)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["build_parser", "main"]


def _table(args: argparse.Namespace) -> int:
    from .models import SPECS
    from .shapes import check_with_torchinfo, layer_table

    names = list(SPECS) if args.name == "all" else [args.name]
    for name in names:
        print(layer_table(name, args.input))
        if args.check:
            bad = check_with_torchinfo(name, args.input)
            print("torchinfo agrees with every row" if not bad else
                  "torchinfo DISAGREES:\n" + "\n".join(f"  {m}" for m in bad))
        print()
    return 0


def _make_sample(args: argparse.Namespace) -> int:
    import json

    from .sample import SAMPLE_MARKER, make_sample

    root = make_sample(args.out, images=args.images, seed=args.seed, kind=args.kind,
                       workers=args.workers)
    marker = json.loads((root / SAMPLE_MARKER).read_text())
    splits = ", ".join(f"{s} {marker['images_per_split'][s]}" for s in ("train", "val", "test"))
    print(f"GENERATED VOC-format sample, kind {args.kind!r} (not real VOC data) at {root}\n"
          f"  {args.images} images (seed {args.seed}): {splits}; objects "
          f"{sum(marker['objects'].values())}")
    return 0


def _download_voc(args: argparse.Namespace) -> int:
    from .voc import download_voc

    root = download_voc(args.root, test=args.test, mirrors=args.mirror or None)
    print(f"VOC 2007 ready at {root}")
    return 0


def _voc_crops(args: argparse.Namespace) -> int:
    from .voc import build_crops

    manifest = build_crops(args.voc_root, args.out, skip_bad=args.skip_bad)
    for split, counts in manifest["counts"].items():
        print(f"{split}: {sum(counts.values())} crops")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, fit

    overrides = {k: v for k, v in dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                        seed=args.seed, device=args.device).items()
                 if v is not None}
    config = TrainConfig(model=args.model, **overrides)
    history = fit(config, args.data, args.out, resume=args.resume)
    print(history.summary())
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .results import compare

    compare(args.data, args.out, models=tuple(args.models), seeds=args.seeds, epochs=args.epochs,
            device=args.device)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .results import export_run

    out = export_run(args.run_dir, args.to)
    print(f"exported {args.run_dir} to {out}")
    return 0


def _record(args: argparse.Namespace) -> int:
    from .record import record

    folders = record(args.profile, out=args.out, only=tuple(args.only or ()), jobs=args.jobs,
                     progress=lambda line: print(line, flush=True))
    print(f"{len(folders)} recorded runs in {folders[0].parent if folders else args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zfkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("table", help="print a model's layer table")
    p.add_argument("name", help="alexnet, zfnet, alexnet-paper, zfnet-paper or all")
    p.add_argument("--input", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--check", action="store_true", help="also cross-check with torchinfo")
    p.set_defaults(func=_table)

    p = sub.add_parser("make-sample", help="write a generated VOC-format sample (not VOC data)")
    p.add_argument("--kind", choices=("shapes", "photos"), default="shapes",
                   help="shapes: one shape and colour per class (tiny, for tests); photos: "
                        "photo-textured shapes among clutter (colour alone does not solve it)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--images", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None,
                   help="processes drawing the photos kind (default: every CPU core)")
    p.set_defaults(func=_make_sample)

    p = sub.add_parser("download-voc", help="download and verify Pascal VOC 2007")
    p.add_argument("--root", type=Path, required=True, help="folder to hold VOCdevkit/")
    p.add_argument("--test", action="store_true", help="also the test archive")
    p.add_argument("--mirror", action="append", help="a base URL to try first (repeatable)")
    p.set_defaults(func=_download_voc)

    p = sub.add_parser("voc-crops", help="crop every non-difficult object into class folders")
    p.add_argument("--voc-root", type=Path, required=True, help="a VOCdevkit/VOC2007 folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count malformed annotations or unreadable images")
    p.set_defaults(func=_voc_crops)

    p = sub.add_parser("train", help="train one model (resumable)")
    p.add_argument("--model", required=True)
    p.add_argument("--data", type=Path, required=True, help="a crops folder (see voc-crops)")
    p.add_argument("--out", type=Path, required=True, help="the run folder")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.set_defaults(func=_train)

    p = sub.add_parser("compare", help="train both nets with the same recipe and seeds")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--models", nargs="+", default=["alexnet", "zfnet"])
    p.add_argument("--seeds", type=int, default=1, help="how many seeds (mean +- std)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=_compare)

    p = sub.add_parser("export", help="record a finished run for the book")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--to", type=Path, required=True)
    p.set_defaults(func=_export)

    p = sub.add_parser("record", help="train and export every run the chapters show")
    p.add_argument("--profile", default="book", help="the profile to record (default: book)")
    p.add_argument("--out", type=Path, default=None,
                   help="where the recorded runs go (default: book/results of this checkout)")
    p.add_argument("--only", action="append",
                   help="record only this run, e.g. book-zfnet-s1 (repeatable)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, one process and one thread each (default 1)")
    p.set_defaults(func=_record)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
