"""``realtime-me``: run the live pipeline, or one of the tools (synth, spot-eval, ...).

``realtime-me --camera 0`` / ``--video F`` / ``--frames DIR --fps F`` / ``--demo``
runs the pipeline; ``realtime-me COMMAND ...`` runs a tool. Each tool lives in
its own module with ``configure(parser)`` and ``run(args) -> int`` and is
imported only when asked for, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import UserError

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("realtime_me.run", "run the live pipeline (the default command)"),
    "synth": ("realtime_me.synth", "render a labelled micro-expression clip from one face photo"),
    "spot-eval": ("realtime_me.spot_eval", "score the spotter on generated and real clips (MEGC rule)"),
    "loso": ("realtime_me.training.cli", "leave-one-subject-out evaluation on the composite set"),
    "train": ("realtime_me.training.cli", "train the final model on all subjects"),
    "evaluate": ("realtime_me.training.cli", "evaluate saved weights on a folder in the composite layout"),
    "export": ("realtime_me.export", "build ONNX / TensorRT engines or a Triton model repository"),
    "serve": ("realtime_me.serve", "start the Gradio browser demo"),
    "recognise": ("realtime_me.recognise", "recognise pre-segmented micro-expression samples (frames, video or a dataset list)"),
}


def _command_parser(name: str) -> argparse.ArgumentParser:
    module, help_ = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"realtime-me {name}" if name != "run" else "realtime-me", description=help_)
    mod = importlib.import_module(module)
    configure = getattr(mod, f"configure_{name.replace('-', '_')}", None) or mod.configure
    configure(parser)
    parser.set_defaults(_module=mod, _command=name)
    return parser


def _usage() -> str:
    lines = ["usage: realtime-me [--camera N | --video PATH | --frames DIR --fps F | --demo] [options]",
             "       realtime-me COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "realtime-me run --help lists the pipeline's options; realtime-me COMMAND --help a tool's."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help") and len(argv) == 1:
        print(_usage())
        return 0
    name = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _command_parser(name).parse_args(argv)
    mod = args._module
    runner = getattr(mod, f"run_{name.replace('-', '_')}", None) or mod.run
    try:
        return int(runner(args) or 0)
    except UserError as e:
        print(f"realtime-me {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
