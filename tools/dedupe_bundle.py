"""Let a bundle's formats share byte-identical graph files instead of carrying copies, in place.

    python tools/dedupe_bundle.py edge_emotion/models/default

Checks every file the manifest lists (a file whose sha256 differs from its entry stops the tool
before anything changes; an entry whose file is gone is pointed at a listed file with its sha256),
points the entries of identical files at one copy (schema version 2), removes the other copies and
verifies the result (:func:`edge_emotion.export.bundle_writer.dedupe_bundle`). Running it again
changes nothing. Needs the ``export`` extra (the writer imports torch).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this clone's edge_emotion, not an installed one

from edge_emotion.errors import EdgeEmotionError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="+", help="bundle folder(s) to deduplicate in place")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from edge_emotion.export.bundle_writer import dedupe_bundle

    for bundle in args.bundle:
        try:
            report = dedupe_bundle(bundle)
        except EdgeEmotionError as exc:
            print(f"dedupe_bundle: {exc}", file=sys.stderr)
            return 2
        for keep, formats in sorted(report["shared"].items()):
            print(f"{bundle}: {keep} is shared by {', '.join(formats)}")
        for name in report["removed"]:
            print(f"{bundle}: removed the copy {name}")
        print(f"{bundle}: {len(report['removed'])} copies removed, {report['bytes_saved']} bytes saved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
