"""The ``graphkit`` command line."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from graphkit._errors import EXIT_CODES, INTERNAL_ERROR, PIPE_CLOSED, GraphkitError, UsageError

EPILOG = "exit codes:\n" + "\n".join(
    f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()
)


def run() -> NoReturn:
    """The ``graphkit`` command: :func:`main`, then a quick exit.

    With TensorFlow or torch loaded, tearing the interpreter down after the
    work is done takes up to a second (0.95 s after the signature-cleaning
    recipe) and does nothing the operating system does not. So every exit
    handler runs (plugins' too), the standard streams are flushed, and the
    process ends without module teardown. Everything graphkit writes is
    closed and in place before :func:`main` returns.
    """
    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: exit the usual way
        sys.exit(code)
    try:
        run_exit_handlers()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader that went away
                stream.flush()
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if not debug:
        from graphkit import _framework_logs

        _framework_logs.hide()
    try:
        return args.run(args)
    except GraphkitError as error:
        if debug:
            traceback.print_exc()
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"graphkit: error: {line}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("graphkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`graphkit passes | head`): not an error of ours.
        # Point stdout at nothing so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    except Exception as error:
        if debug:
            traceback.print_exc()
        print(
            f"graphkit: internal error: {type(error).__name__}: {error} "
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    with_plugins = argparse.ArgumentParser(add_help=False)
    with_plugins.add_argument(
        "--plugin",
        metavar="FILE",
        action="append",
        default=[],
        help="load a plugin file (repeatable)",
    )

    parser = argparse.ArgumentParser(
        prog="graphkit",
        description="Declarative ONNX graph surgery: apply YAML recipes of plugin passes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"graphkit {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            parents=[common, *parents],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    apply = command("apply", "run a recipe and write its output", with_plugins)
    apply.add_argument(
        "recipe", metavar="RECIPE", help="a recipe file or the name of a built-in recipe"
    )
    apply.add_argument(
        "-o", "--output", metavar="OUTPUT", help="where to write the model (overrides the recipe)"
    )
    apply.add_argument(
        "--source", metavar="PATH", help="the model to start from (overrides source.path)"
    )
    apply.add_argument(
        "--keep-failed",
        action="store_true",
        help="write the output even if the parity check fails (the exit code still says it failed)",
    )
    apply.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (source, passes with their parameters, output, verify); write nothing",
    )
    apply.set_defaults(run=_apply)

    validate = command("validate", "check a recipe without running it", with_plugins)
    validate.add_argument(
        "recipe", metavar="RECIPE", help="a recipe file or the name of a built-in recipe"
    )
    validate.set_defaults(run=_validate)

    passes = command("passes", "list the registered passes, or show one", with_plugins)
    passes.add_argument("name", metavar="NAME", nargs="?", help="show this pass's parameters")
    passes.set_defaults(run=_passes)

    plugins = command("plugins", "list the loaded plugins and where they come from", with_plugins)
    plugins.set_defaults(run=_plugins)

    recipes = command("recipes", "list the built-in recipes", with_plugins)
    recipes.set_defaults(run=_recipes)

    demo = command(
        "demo", "build stand-ins of the two signature models and convert them with the built-ins"
    )
    demo.add_argument(
        "--workdir",
        metavar="DIR",
        default="graphkit-demo",
        help="where to build the stand-ins and write the results (default: ./graphkit-demo)",
    )
    demo.set_defaults(run=_demo)

    inspect = command("inspect", "show a model's interface, ops, symbolic dims and size")
    inspect.add_argument("model", metavar="MODEL", help="an ONNX file")
    inspect.set_defaults(run=_inspect)

    schema = command(
        "schema",
        "print the JSON Schema of recipes, with every loaded pass and format",
        with_plugins,
    )
    schema.set_defaults(run=_schema)

    new = command("new", "write a starter recipe for a model", with_plugins)
    new.add_argument(
        "model", metavar="MODEL", help="an ONNX file, a SavedModel folder or a checkpoint"
    )
    new.add_argument(
        "-o", "--output", metavar="RECIPE", help="the recipe to write (default: MODEL.recipe.yaml)"
    )
    new.add_argument("--force", action="store_true", help="replace an existing recipe")
    new.add_argument("--format", metavar="FORMAT", help="the source format (default: detected)")
    new.add_argument(
        "--module", metavar="FILE.py:CLASS", help="torch: the model class the weights load into"
    )
    new.add_argument(
        "--state-dict-key", metavar="KEY", help="torch: where the weights are in the checkpoint"
    )
    new.add_argument(
        "--input",
        metavar="NAME=SHAPE[:DTYPE]",
        action="append",
        default=[],
        help="torch: one input of forward, such as img=1,3,224,224:float32 (repeatable, in order)",
    )
    new.set_defaults(run=_new)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graphkit")
    except PackageNotFoundError:
        return "unknown"


def _apply(args: argparse.Namespace) -> int:
    if args.dry_run:
        from graphkit._authoring.plan import dry_run

        dry_run(args.recipe, output=args.output, source=args.source, plugins=args.plugin)
        return 0
    from graphkit._recipe.recipe import load_recipe

    recipe = load_recipe(
        args.recipe, plugin_files=args.plugin, source=args.source, output=args.output
    )
    # Before onnx and the runner are imported, so the helper processes' own
    # imports run beside them.
    recipe.warm_up()
    from graphkit._runner import apply

    apply(recipe, keep_failed=args.keep_failed, echo=None if args.quiet else print)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from graphkit._recipe.recipe import load_recipe

    recipe = load_recipe(args.recipe, plugin_files=args.plugin)
    source = (
        f"{recipe.source.path} ({recipe.source.frontend.name})" if recipe.source else "none given"
    )
    output = recipe.output or "none given"
    print(f"{recipe.file}: valid: {len(recipe.steps)} passes, source {source}, output {output}")
    return 0


def _passes(args: argparse.Namespace) -> int:
    from graphkit._plugins import load_plugins
    from graphkit._recipe.params import describe_fields, did_you_mean

    registry = load_plugins(args.plugin).passes
    if args.name is None:
        width = max(map(len, registry), default=0)
        for name in sorted(registry):
            print(f"{name:<{width}}  {registry[name].summary}")
        return 0
    pass_ = registry.get(args.name)
    if pass_ is None:
        raise UsageError(f"no pass named {args.name!r}{did_you_mean(args.name, registry)}")
    print(pass_.name)
    print(textwrap.indent(pass_.doc, "  "))
    rows = describe_fields(pass_.params)
    print("\nparameters:" if rows else "\nparameters: none")
    for name, type_, default, description in rows:
        print(f"  {name}: {type_} = {default}")
        print(textwrap.indent(textwrap.fill(description, 76), "      "))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from graphkit._plugins import load_plugins

    for info in load_plugins(args.plugin).describe():
        provided = [f"passes: {', '.join(info.passes)}"] if info.passes else []
        if info.frontends:
            provided.append(f"formats: {', '.join(info.frontends)}")
        print(f"{info.name}  [{info.kind}]  {info.location}")
        for line in provided:
            print(f"    {line}")
    return 0


def _recipes(args: argparse.Namespace) -> int:
    from graphkit._recipe.index import builtin_recipes, recipe_summary

    found = builtin_recipes(args.plugin)
    width = max(map(len, found), default=0)
    for name, path in sorted(found.items()):
        print(f"{name:<{width}}  {recipe_summary(path)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from graphkit_plugins.signature.demo import run_demo

    run_demo(Path(args.workdir))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from graphkit._inspect import describe
    from graphkit._modelio.load import load

    path = Path(args.model)
    print(describe(load(path), path))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from graphkit._authoring.schema import schema_text
    from graphkit._plugins import load_plugins

    sys.stdout.write(schema_text(load_plugins(args.plugin)))
    return 0


def _new(args: argparse.Namespace) -> int:
    from graphkit._authoring.starter import parse_input, write_starter

    options: dict[str, object] = {}
    if args.module is not None:
        options["module"] = args.module
    if args.state_dict_key is not None:
        options["state_dict_key"] = args.state_dict_key
    if args.input:
        options["inputs"] = dict(parse_input(text) for text in args.input)
    write_starter(
        args.model,
        args.output,
        format=args.format,
        options=options,
        plugin_files=args.plugin,
        force=args.force,
        echo=print,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
