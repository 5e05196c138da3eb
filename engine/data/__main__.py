"""``python -m engine.data check MANIFEST`` (counts per imaging type x task, every invalid row; exit 1 on errors)
and ``python -m engine.data convert DATASET ROOT OUT.jsonl`` (a registered adapter, :mod:`engine.data.adapters`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from engine.data.adapters import ADAPTERS, adapter_kwargs, get_adapter
from engine.data.adapters.common import AdapterError
from engine.data.manifest import read_manifest


def check(path: Path, check_files: bool, decode: bool, allowed_roots: list[Path] = ()) -> int:
    """Print counts and errors of the manifest at ``path``; return the exit status (1 when any row is invalid,
    e.g. a path outside the manifest's folder and ``allowed_roots``)."""
    samples, errors = read_manifest(path, check_files=check_files, skip_invalid=True, decode=decode,
                                    allowed_roots=allowed_roots)
    print(f"{path}: {len(samples)} valid sample(s), {len(errors)} invalid row(s)")
    counts = Counter((s.imaging, s.task) for s in samples)
    if counts:
        print(f"{'imaging':<12} {'task':<16} {'samples':>8}")
        for (imaging, task), n in sorted(counts.items()):
            print(f"{imaging:<12} {task:<16} {n:>8}")
    for line, reason in errors:
        print(f"{path}:{line}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def convert(builder: Callable[..., int], root: Path, out: Path, seed: int, kwargs: dict[str, object]) -> int:
    """Run an adapter's ``builder`` with extra keyword arguments (from ``--option KEY=VALUE``, typed by
    :func:`engine.data.adapters.adapter_kwargs`); a dataset folder without the published layout returns 1 after
    printing the adapter's message. The adapter's log (what it wrote and what it skipped, with counts) goes to
    stderr."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        count = builder(root, out, seed=seed, **kwargs)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} sample(s) to {out}")
    if not root.resolve().is_relative_to(out.resolve().parent):
        print(f"its image paths lie under {root}, outside the manifest's folder: check and train with --allow-root "
              f"{root} (allowed_roots in a training config)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("check", help="validate a manifest and count its samples")
    p.add_argument("manifest", type=Path)
    p.add_argument("--no-files", action="store_true", help="skip the image/mask file checks")
    p.add_argument("--decode", action="store_true", help="decode every image and mask fully (slow)")
    p.add_argument("--allow-root", action="append", type=Path, default=[], metavar="FOLDER",
                   help="a folder besides the manifest's own that image and mask paths may lie in (repeatable)")
    p = commands.add_parser("convert", help="write a manifest from a public dataset's folder")
    p.add_argument("dataset", help=f"one of {sorted(ADAPTERS)}")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="adapter-specific argument")
    args = parser.parse_args(argv)
    if args.command == "check":
        if args.manifest.is_dir():
            parser.error(f"manifest {args.manifest} is a folder, not a file")
        if not args.manifest.is_file():
            parser.error(f"manifest not found: {args.manifest}")
        return check(args.manifest, not args.no_files, args.decode, args.allow_root)
    if args.out.is_dir():
        parser.error(f"OUT {args.out} is a folder; name the manifest file, e.g. {args.out / 'manifest.jsonl'}")
    parent = next((p for p in args.out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        parser.error(f"OUT {args.out}: {parent} is not a folder")
    bad = [o for o in args.option if "=" not in o]
    if bad:
        parser.error(f"--option needs KEY=VALUE, got {bad[0]!r}")
    try:
        builder = get_adapter(args.dataset)
        kwargs = adapter_kwargs(builder, dict(option.split("=", 1) for option in args.option))
    except ValueError as err:
        parser.error(str(err))
    return convert(builder, args.root, args.out, args.seed, kwargs)


if __name__ == "__main__":
    sys.exit(main())
