"""The `magicktune` command: profile this ImageMagick, plan a job, write policies, encode raw streams.

Human output by default, --json for scripts; every error in what was asked is one line and a non-zero exit,
while a bug shows its traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import stat
import sys
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import __version__, environment, magick, policy, profile, signals, units
from .environment import CONFIGURE_PATH, limit_variable, prepend_configure_path
from .errors import MagickTuneError, Terminated, UsageError
from .resources import Route

#: The resources `policy generate` takes as options (--memory, --list-length, ...).
GENERATE_RESOURCES = ("memory", "map", "disk", "area", "width", "height", "list-length", "thread", "time")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        with signals.terminate_as_interrupt(redeliver=False):  # SIGTERM and SIGHUP clean up as Ctrl-C does
            return args.run(args) or 0
    except Terminated as ended:
        print(f"magicktune: terminated by {signal.Signals(ended.signum).name}", file=sys.stderr)
        return 128 + ended.signum
    except KeyboardInterrupt:
        print("magicktune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except (MagickTuneError, OSError) as error:  # what the user gave or the machine has; anything else is a bug
        print(f"magicktune: error: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magicktune", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"magicktune {__version__}")
    parser.add_argument(
        "--imagemagick",
        metavar="PATH",
        help=f"the magick or convert binary to use (default: ${environment.IMAGEMAGICK} or PATH)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    show = commands.add_parser("profile", help="what ImageMagick is here, its limits and who sets them")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_profile)

    plan = commands.add_parser(
        "apply",
        help="plan limits, engine and temp dir for a job",
        description="Plan a job and print it as a report, JSON, shell exports or a policy.",
    )
    job = plan.add_mutually_exclusive_group(required=True)
    job.add_argument("--frames", type=_positive_int, help="number of frames")
    job.add_argument("--stream", metavar="FILE", help="a raw stream on disk; its size gives the frame count")
    plan.add_argument("--size", required=True, metavar="WxH", help="frame size in pixels, like 432x720")
    plan.add_argument("--fps", type=float, help="frames per second")
    plan.add_argument("--channels", type=int, default=4, help="bytes a pixel in the stream (default 4, RGBA)")
    plan.add_argument(
        "--temp-dir",
        metavar="DIR",
        help="where a spilled pixel cache may go (default: your config's temporary-path, else the "
        "usual temp dir with room)",
    )
    plan.add_argument(
        "--optimize-layers",
        choices=("auto", "yes", "no"),
        default="auto",
        help="the command adds -layers OptimizePlus, which holds a second, cropped copy of the frames "
        "(auto: as this matplotlib's ImageMagickWriter does)",
    )
    plan.add_argument(
        "--format",
        choices=("text", "json", "shell", "policy"),
        default="text",
        help="text report, JSON, `export` lines for eval, or a policy dir (see --output)",
    )
    plan.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    plan.add_argument(
        "--output",
        metavar="DIR",
        help="where --format shell/policy put the override policy.xml (default: a private dir in the user cache)",
    )
    plan.set_defaults(run=run_apply)

    policies = commands.add_parser("policy", help="generate, show and check policy.xml files")
    actions = policies.add_subparsers(title="actions", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate",
        help="write a preset as policy.xml (an override by default)",
        description="Render a preset (policies/*.yaml, or your own YAML file) as an "
        "override for MAGICK_CONFIGURE_PATH, or as a whole policy.",
    )
    generate.add_argument(
        "preset", nargs="?", help="preset name or YAML file (default: your config's, else 'animation')"
    )
    generate.add_argument("--list", action="store_true", help="list the presets and stop")
    generate.add_argument(
        "--standalone",
        action="store_true",
        help="a complete policy.xml to install in place of the system's (keeps its rules)",
    )
    generate.add_argument(
        "--no-system-rules",
        action="store_true",
        help="with --standalone: leave the system's security rules out (check will say so)",
    )
    for name in GENERATE_RESOURCES:
        generate.add_argument(f"--{name}", metavar="SIZE", help=f"override the preset's {name}")
    generate.add_argument("--temporary-path", metavar="DIR", help="where ImageMagick spills its cache")
    generate.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="write here (a directory, or a path ending in policy.xml) instead of standard output",
    )
    generate.set_defaults(run=run_policy_generate)
    show_policy = actions.add_parser("show", help="the policy in force and where each part comes from")
    show_policy.add_argument("--json", action="store_true", help="print JSON")
    show_policy.set_defaults(run=run_policy_show)
    check = actions.add_parser("check", help="what ImageMagick makes of a policy.xml")
    check.add_argument("file", help="the policy.xml to check")
    check.add_argument(
        "--standalone", action="store_true", help="judge it as a replacement for the system policy, not an override"
    )
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(run=run_policy_check)

    encode = commands.add_parser("encode", help="encode a raw RGBA stream to GIF with the streaming encoder")
    encode.add_argument("source", help="raw RGBA file, or - for standard input")
    encode.add_argument("output", help="the GIF to write")
    encode.add_argument("--size", required=True, metavar="WxH", help="frame size in pixels, like 432x720")
    encode.add_argument("--fps", type=float, required=True, help="frames per second")
    encode.add_argument("--colors", type=int, default=256, help="colours per frame, 2 to 256 (default 256)")
    encode.add_argument(
        "--dither",
        choices=("none", "floyd-steinberg", "riemersma"),
        default=None,
        help="dither method (default: the encoder's)",
    )
    encode.add_argument(
        "--no-optimize", dest="optimize", action="store_false", help="write whole frames instead of only what changed"
    )
    encode.add_argument("--global-palette", action="store_true", help="one palette for all frames")
    encode.add_argument(
        "--quality",
        type=int,
        default=None,
        help="0 to 100: lower merges more of each frame's colours, for smaller files, while the frame's PSNR stays "
        "near 20 + 0.4 x quality dB or above; with --quantizer imagemagick, a dither or --global-palette, the share "
        "of --colors each table may use (default: 100, every colour there is room for)",
    )
    encode.add_argument(
        "--tolerance",
        type=int,
        default=None,
        help="levels (0 to 255) a pixel may drift from what the GIF shows before it is written again (default: 0)",
    )
    encode.add_argument(
        "--quantizer",
        choices=("magicktune", "imagemagick"),
        default=None,
        help="who builds each frame's colour table: magicktune (exact where it can be; default) or ImageMagick's octree",
    )
    encode.add_argument("--loop", type=int, default=0, help="times to loop, 0 = forever (default)")
    encode.add_argument("--json", action="store_true", help="print the result as JSON")
    encode.set_defaults(run=run_encode)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _imagemagick(args: argparse.Namespace) -> magick.ImageMagick:
    return magick.find(args.imagemagick)


def run_profile(args: argparse.Namespace) -> int:
    im = _imagemagick(args)
    effective = policy.show(im)
    machine = profile.Machine.read()
    security = [rule for rule in effective.rules if rule.is_security_rule]
    wand, mismatch = _wand_build(im)
    if mismatch:
        print(f"magicktune: warning: {mismatch}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "imagemagick": {
                        "version": im.version,
                        "major": im.major,
                        "quantum_depth": im.quantum_depth,
                        "hdri": im.hdri,
                        "openmp": im.openmp,
                        "convert": list(im.convert),
                        "bytes_per_pixel": im.bytes_per_pixel,
                        "build": im.build,
                    },
                    "wand": wand,
                    "mismatch": mismatch,
                    **effective.to_dict(),
                    "machine": vars(machine),
                },
                indent=2,
            )
        )
        return 0
    openmp = ", OpenMP" if im.openmp else ""
    print(f"{im.label}{openmp}, {im.bytes_per_pixel} bytes a pixel in cache: {' '.join(im.convert)}")
    if "label" in wand:
        print(f"wand: {wand['label']}, {wand['library']} (writer='magicktune' encodes with it)")
    else:
        print(f"wand: not loaded ({wand['error']}); writer='magicktune' needs it")
    print(f"policy files: {', '.join(effective.files) if effective.files else 'none (built-in defaults only)'}")
    print("limits:")
    for setting in effective.resources:
        value = units.human(setting.value, units.RESOURCE_KINDS[setting.name])
        print(f"  {setting.name:<12} {value:>12}   {setting.source}")
    print(
        f"security rules: {len(security)}"
        + "".join(f"\n  {r.domain} {r.pattern}: {(r.rights or '').strip()}   {r.path}" for r in security)
    )
    print(
        f"machine: {units.human(machine.ram_available)} of {units.human(machine.ram_total)} RAM free, "
        f"{machine.cpus} cores, {units.human(machine.temp_free)} free in {machine.temp_dir}"
    )
    return 0


def _wand_build(im: magick.ImageMagick) -> tuple[dict, str | None]:
    """The libMagickWand Wand loads, for the profile, and how it differs from the `magick` binary (or None)."""
    try:
        from . import wandlib
    except ImportError as error:  # no libMagickWand: the command-line tools still work
        return {"error": str(error)}, None
    library, label, major, depth, hdri = wandlib.loaded_build()
    build = f"Q{depth}{'-HDRI' if hdri else ''}"
    return {"library": library, "label": label, "major": major, "build": build}, wandlib.mismatch(im)


def run_policy_generate(args: argparse.Namespace) -> int:
    if args.list:
        for name in policy.available_presets():
            print(f"{name}: {' '.join(policy.load_preset(name).description.split())}")
        return 0
    if args.no_system_rules and not args.standalone:
        raise UsageError("--no-system-rules only applies to --standalone: an override never touches system rules")
    temp = (
        None if args.temporary_path is None else profile.checked_temporary_path(args.temporary_path, "--temporary-path")
    )
    preset = policy.configured_preset(args.preset, resources=_resource_options(args), temporary_path=temp)
    im = _imagemagick(args)
    text = policy.generate(
        preset, standalone=args.standalone, keep_system_rules=not args.no_system_rules, imagemagick=im
    )
    with tempfile.TemporaryDirectory(
        prefix="magicktune-generate-", dir=environment.configurable_temp_dir()[0]
    ) as directory:
        policy.write(Path(directory) / "policy.xml", text)
        short = _not_taken_from_policy(preset.resources, im, directory)
    if not args.output:
        sys.stdout.write(text)
    else:
        written = policy.save(_policy_file(args.output, configure_path=not args.standalone), text)
        print(f"wrote {written}")
        if not args.standalone:
            print(f"use it with: {_configure_path_export(written.parent)}")
    _say_what_to_export(short, im, " wherever this policy is used")
    return 0


def _resource_options(args: argparse.Namespace) -> dict[str, str]:
    """The --memory, --disk, ... options given, each read here so that an error names its option."""
    given: dict[str, str] = {}
    for name in GENERATE_RESOURCES:
        value = getattr(args, name.replace("-", "_"))
        if value is None:
            continue
        try:
            units.parse_limit(name, value, whole=1)  # any whole: a percentage is resolved later, on the right one
        except ValueError as error:
            raise UsageError(f"--{name}: {error}") from None
        given[name] = value
    return given


def run_policy_show(args: argparse.Namespace) -> int:
    effective = policy.show(_imagemagick(args))
    if args.json:
        print(json.dumps(effective.to_dict(), indent=2))
    else:
        sys.stdout.write(effective.text())
    return 0


def run_policy_check(args: argparse.Namespace) -> int:
    findings = policy.check(args.file, _imagemagick(args), standalone=args.standalone)
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.file,
                    "errors": errors,
                    "warnings": warnings,
                    "findings": [{"level": f.level, "message": f.message} for f in findings],
                },
                indent=2,
            )
        )
    else:
        for finding in findings:
            print(finding)
        print(f"{args.file}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _job(args: argparse.Namespace) -> profile.Job:
    width, height = profile.parse_geometry(args.size)
    if args.stream:
        return profile.Job.from_stream(args.stream, width, height, args.channels, args.fps)
    return profile.Job(width, height, args.frames, args.channels, args.fps)


def run_apply(args: argparse.Namespace) -> int:
    job = _job(args)
    im = _imagemagick(args)
    optimize = {"yes": True, "no": False}.get(args.optimize_layers)
    if optimize is None:
        optimize = profile.matplotlib_optimizes_layers()
    temp_dir: str | None
    if args.temp_dir:
        temp_dir = profile.checked_temporary_path(args.temp_dir, "--temp-dir")
    else:
        temp_dir = policy.user_defaults().get(policy.TEMPORARY_PATH_RESOURCE)
    plan = profile.plan(job, im, temporary_path=temp_dir, optimize_layers=optimize)
    if args.format == "json":
        print(json.dumps(plan.to_dict(), indent=2))
    elif args.format == "text":
        print(report(plan))
    elif args.format == "shell":
        print(shell_exports(plan, im, args.output))
    else:
        text = policy.render(
            plan.limits,
            temporary_path=plan.temporary_path,
            comment=f"magicktune plan for {_job_words(job)}: resource limits only",
        )
        written = policy.write(
            _policy_file(args.output or _default_policy_dir(text)), text, private=args.output is None
        )
        print(f"wrote {written}\nuse it with: {_configure_path_export(written.parent)}")
        _say_what_to_export(_not_taken_from_policy(plan.limits, im, written.parent), im, ", or use --format shell")
    return 0


def _not_taken_from_policy(
    wanted: Mapping[str, units.Limit | None], im: magick.ImageMagick, directory: str | os.PathLike
) -> dict[str, str]:
    """The limits ImageMagick does not take from the policy in `directory` alone but does with a variable: each as
    that variable and what ImageMagick runs with instead, {"MAGICK_MAP_LIMIT=102644MB": "map 50.6 GB, not 103 GB"}.

    A policy only lowers the built-in limits (map = 2 x RAM; IM7's thread = cores - 1), and IM7 takes a time limit
    only from MAGICK_TIME_LIMIT (a policy's time only caps that). A limit the variable cannot reach either (threads
    above ImageMagick's OpenMP maximum) is left out: nothing would give it.
    """
    env = environment.without_limit_variables()
    env[CONFIGURE_PATH] = prepend_configure_path(directory, env.get(CONFIGURE_PATH))
    in_force = im.resources(env=env)
    missing = {
        name: units.reading(limit)
        for name, limit in wanted.items()
        if name in in_force and not units.same_limit(in_force[name], units.reading(limit), units.RESOURCE_KINDS[name])
    }
    if not missing:
        return {}
    variables = {
        limit_variable(name): units.to_magick(value, units.RESOURCE_KINDS[name]) for name, value in missing.items()
    }
    with_variables = im.resources(env={**env, **variables})
    short: dict[str, str] = {}
    for name, value in missing.items():
        kind = units.RESOURCE_KINDS[name]
        if units.same_limit(with_variables.get(name), value, kind):
            short[f"{limit_variable(name)}={variables[limit_variable(name)]}"] = (
                f"{name} {units.human(in_force[name], kind)}, not {units.human(value, kind)}"
            )
    return short


def _say_what_to_export(short: dict[str, str], im: magick.ImageMagick, alternative: str) -> None:
    """Warn on stderr that a policy alone leaves these limits short, and which exports give them."""
    if short:
        print(
            f"magicktune: note: a policy can only lower {im.label}'s built-in limits"
            f"{' and IM7 takes time only from MAGICK_TIME_LIMIT' if im.major >= 7 else ''}, so with this one alone "
            f"ImageMagick runs with {', '.join(short.values())}: also export {' '.join(short)}{alternative}",
            file=sys.stderr,
        )


def _configure_path_export(directory: Path) -> str:
    """The shell line that puts `directory` first on MAGICK_CONFIGURE_PATH, keeping what is already there."""
    return f'export {CONFIGURE_PATH}={shlex.quote(str(directory))}"${{{CONFIGURE_PATH}:+:${CONFIGURE_PATH}}}"'


def _job_words(job: profile.Job) -> str:
    frames = "an unknown number of" if job.frames is None else str(job.frames)
    rate = f" at {job.fps:g} fps" if job.fps else ""
    return f"{frames} frames of {job.width}x{job.height}{rate}"


def _policy_file(path: str | os.PathLike, *, configure_path: bool = True) -> Path:
    """The absolute policy.xml an --output names: the path itself if it ends in policy.xml, else policy.xml inside it.

    `configure_path`: the directory goes on MAGICK_CONFIGURE_PATH, so it must not hold its separator.
    """
    path = Path(path).expanduser().absolute()
    if path.name == "policy.xml" and not path.is_dir():
        target = path
    elif path.suffix.lower() == ".xml" and not path.is_dir():
        raise UsageError(
            f"--output {str(path)!r}: ImageMagick loads only files named policy.xml: give a directory, "
            f"or a path ending in policy.xml"
        )
    else:
        target = path / "policy.xml"
    if configure_path:
        environment.configurable(target.parent, "--output directory")
    return target


def _default_policy_dir(text: str) -> Path:
    """A private dir in the user cache named by the policy's content: it outlives the command (for `eval`), and
    two plans share it only when they write the same policy."""
    return policy.cache_dir(hashlib.sha256(text.encode()).hexdigest()[:12])


def report(plan: profile.Plan) -> str:
    """The plan as a short readable report."""
    human, job, cache, machine = units.human, plan.job, plan.cache, plan.machine
    stream = "" if job.stream_bytes is None else f": {human(job.stream_bytes)} of raw stream"
    lines = [
        f"job          {_job_words(job)}{stream}",
        f"imagemagick  {plan.imagemagick}, {cache.bytes_per_pixel} bytes a pixel in cache",
    ]
    if cache.read_bytes is not None and job.frames is not None:
        layers = f", up to {human(cache.peak_bytes)} with -layers OptimizePlus" if cache.optimize_layers else ""
        lines.append(
            f"pixel cache  {human(cache.read_bytes)} while reading, {human(cache.gif_bytes)} while "
            f"writing GIF{layers}; list length at least {job.frames + 1}"
        )
    lines.append(
        f"machine      {human(machine.ram_available)} of {human(machine.ram_total)} RAM free, "
        f"{machine.cpus} cores, {human(machine.temp_free)} free in {machine.temp_dir}"
    )
    now = ", ".join(
        f"{n} {human(plan.current_limits.get(n), units.RESOURCE_KINDS[n])}"
        for n in ("memory", "map", "disk", "list-length")
    )
    fit = "" if plan.frames_that_fit_now is None else f": room for about {plan.frames_that_fit_now} frames"
    lines.append(f"limits now   {now}{fit}")
    planned = ", ".join(f"{n} {human(v, units.RESOURCE_KINDS[n])}" for n, v in plan.limits.items())
    lines.append(f"plan         {planned}, temp dir {plan.temporary_path}")
    convert = {
        "memory": "fits in memory",
        "disk": "spills to disk (slow)",
        "no": "does not fit",
        "unknown": "depends on the frame count",
    }[plan.convert_fits]
    lines.append(
        f"engine       {plan.engine} (streaming, about {human(plan.streaming_bytes)}); tuned convert {convert}"
    )
    lines += [f"note         {w}" for w in plan.warnings]
    keywords = ", ".join(
        f"{n.replace('-', '_')}={_python_literal(v, units.RESOURCE_KINDS[n])}" for n, v in plan.limits.items()
    )
    lines.append(f"in Python    with magicktune.limits({keywords}): ani.save(..., writer='imagemagick')")
    return "\n".join(lines)


def _python_literal(value: units.Limit, kind: units.Kind) -> str:
    if value is units.UNLIMITED:
        return "'unlimited'"
    return str(value) if kind == "count" else repr(units.to_magick(value, kind))


def shell_exports(plan: profile.Plan, im: magick.ImageMagick, output: str | None) -> str:
    """`export` lines that put the plan in force for every ImageMagick the shell starts."""
    requested = {name: units.reading(value) for name, value in plan.limits.items()}
    route = Route.of(requested, plan.temporary_path, im.policy_rules())
    lines = [_shell_comment(f"magicktune: {_job_words(plan.job)}; {'; '.join(plan.warnings[:1])}")]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in route.variables.items()]
    if route.needs_policy:
        text = route.policy_text()
        written = policy.write(_policy_file(output or _default_policy_dir(text)), text, private=output is None)
        lines.append(_configure_path_export(written.parent))
    return "\n".join(lines)


def _shell_comment(text: str) -> str:
    """`text` as one shell comment line: a control character (a newline would end the comment and run the rest)
    is written as its escape instead."""
    return "# " + "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)


def _is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # let the reader say what is wrong with it


def _is_stdout(path: str) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):
        return False


def run_encode(args: argparse.Namespace) -> int:
    from . import encoder

    width, height = profile.parse_geometry(args.size)
    options = {
        "colors": args.colors,
        "optimize": args.optimize,
        "global_palette": args.global_palette,
        "loop": args.loop,
    }
    for name in ("dither", "quality", "tolerance", "quantizer"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    total = None
    if args.source != "-" and _is_regular_file(args.source):  # a pipe (<(cmd), /dev/stdin) is streamed uncounted
        total = profile.Job.from_stream(args.source, width, height, 4).frames
    bar = None
    if sys.stderr.isatty() and not args.json:  # no bar in pipelines and logs
        from .progress import Progress

        bar = Progress(total, "encoding", notebook=False)
    source = sys.stdin.buffer if args.source == "-" else args.source
    try:
        stats = encoder.encode_stream(
            source, args.output, (width, height), args.fps, progress=bar.to if bar else None, **options
        )
    finally:
        if bar is not None:
            bar.close()
    summary = {
        "output": args.output,
        "frames": stats.frames,
        "gif_frames": stats.gif_frames,
        "bytes": stats.bytes,
        "seconds": round(stats.seconds, 3),
    }
    report_to = sys.stderr if args.output == "-" or _is_stdout(args.output) else sys.stdout  # stdout is the GIF
    if args.json:
        print(json.dumps(summary), file=report_to)
    else:
        print(
            f"wrote {args.output}: {stats.frames} frames, {units.human(stats.bytes)} in {stats.seconds:.1f} s",
            file=report_to,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
