"""Builds a random-weight checkpoint for machines that cannot download one.

    python examples/make_tiny_checkpoint.py --backend owlv2 --out checkpoints/owlv2-tiny
    python examples/quickstart.py --backend owlv2 --checkpoint checkpoints/owlv2-tiny

Every registered backend can build one (each backend's
``build_random_checkpoint``): ``yolo-world``, ``yoloe``, ``owlvit``,
``owlv2``, ``grounding-dino``, ``mm-grounding-dino``, ``omdet-turbo`` and
``sam3`` (boxes and instance masks). Transformers checkpoints are
``save_pretrained`` folders (safetensors + processor) that load through the
same ``from_pretrained(<dir>)`` call as the hub ids.

``--size tiny`` (default) is a miniature model for smoke tests;
``--size full`` is the published architecture with random weights, for
speed measurements (``sam3``: 840M parameters, 3.4 GB). Either way the
labels it produces are MEANINGLESS.
"""

from __future__ import annotations

import argparse
import sys

from stoplight_import import import_stoplight


def main(argv=None) -> int:
    import_stoplight()
    from stoplight.plugins.autolabel.backends import available_backends, get_backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, choices=available_backends())
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    args = parser.parse_args(argv)
    ckpt = get_backend(args.backend).build_random_checkpoint(args.out, size=args.size)
    print(f"Random-weight {args.size} {args.backend} checkpoint (labels are meaningless): {ckpt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
