"""The exceptions graphkit raises, and the exit code the CLI gives each."""

from __future__ import annotations


class GraphkitError(Exception):
    """Base class of every error graphkit reports to its users.

    The CLI prints ``str(error)`` as one line on stderr and exits with
    ``exit_code``. Anything that is not a ``GraphkitError`` is a bug.
    """

    exit_code = 1


class UsageError(GraphkitError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class RecipeError(GraphkitError):
    """A recipe is invalid. Holds every problem found, each with its place."""

    exit_code = 3

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ModelError(GraphkitError):
    """A model file cannot be read or written."""

    exit_code = 4


class PassError(GraphkitError):
    """A pass was given parameters that do not fit the model, or failed while running."""

    exit_code = 5


class PluginError(GraphkitError):
    """A plugin cannot be loaded or registers something invalid."""

    exit_code = 6


class ParityError(GraphkitError):
    """The converted model does not reproduce the reference outputs."""

    exit_code = 7


INTERNAL_ERROR = 70  # EX_SOFTWARE in sysexits.h
PIPE_CLOSED = 141  # what a shell reports for a program ended by SIGPIPE

EXIT_CODES = {
    0: "success",
    GraphkitError.exit_code: "an error not covered below",
    UsageError.exit_code: "bad command-line usage",
    RecipeError.exit_code: "invalid recipe",
    ModelError.exit_code: "a model file cannot be read or written",
    PassError.exit_code: "a pass failed or was given parameters that do not fit the model",
    PluginError.exit_code: "a plugin cannot be loaded",
    ParityError.exit_code: "the converted model's outputs differ from the reference",
    INTERNAL_ERROR: "an unexpected internal error (a bug: rerun with --debug and report it)",
    130: "interrupted (Ctrl-C)",
    PIPE_CLOSED: "the output pipe closed early (as in `graphkit passes | head`)",
}
