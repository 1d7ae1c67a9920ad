"""`vidrec` command line: synth, synth-ava, synth-spot, train, pretrain, reconstruct, eval,
predict, stream, detect, highlights, spot, serve, export, extract, convert, flow, two-stream,
ava-eval, track-eval, spot-eval, models, info, demo.

User errors (bad files, unknown names, bad settings, bad flags) print one `error: ...` line and
exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import os
import sys

from vidrec.cli.batch import cmd_extract
from vidrec.cli.commands import (
    cmd_ava_eval,
    cmd_convert,
    cmd_demo,
    cmd_eval,
    cmd_export,
    cmd_flow,
    cmd_info,
    cmd_models,
    cmd_predict,
    cmd_reconstruct,
    cmd_spot_eval,
    cmd_synth,
    cmd_synth_ava,
    cmd_synth_spot,
    cmd_track_eval,
    cmd_train,
    cmd_two_stream,
)
from vidrec.cli.parser import build_parser
from vidrec.cli.serve import cmd_serve
from vidrec.cli.sessions import cmd_detect, cmd_highlights, cmd_spot, cmd_stream
from vidrec.errors import VidrecError

COMMANDS = {
    "synth": cmd_synth,
    "synth-ava": cmd_synth_ava,
    "synth-spot": cmd_synth_spot,
    "train": cmd_train,
    "pretrain": cmd_train,
    "reconstruct": cmd_reconstruct,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "extract": cmd_extract,
    "stream": cmd_stream,
    "detect": cmd_detect,
    "highlights": cmd_highlights,
    "spot": cmd_spot,
    "serve": cmd_serve,
    "export": cmd_export,
    "convert": cmd_convert,
    "flow": cmd_flow,
    "two-stream": cmd_two_stream,
    "ava-eval": cmd_ava_eval,
    "track-eval": cmd_track_eval,
    "spot-eval": cmd_spot_eval,
    "models": cmd_models,
    "info": cmd_info,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one `error:` line and return 2 (1: some inputs failed)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VidrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `vidrec models | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # the file system said no: a path that is a file, no permission, a full disk
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "build_parser", "main"]
