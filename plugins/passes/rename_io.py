"""The ``rename_io`` pass: rename graph inputs and outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class RenameIOParams(Params):
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Graph inputs to rename, as {old name: new name}."
    )
    outputs: dict[str, str] = Field(
        default_factory=dict, description="Graph outputs to rename, as {old name: new name}."
    )


@graph_pass("rename_io", RenameIOParams)
def rename_io(model: ir.Model, params: RenameIOParams) -> PassResult:
    """Rename graph inputs and outputs, and everything that refers to them.

    Consumers, producers, value_info and subgraphs (If, Loop and Scan bodies)
    all follow, because they refer to the same value. Swapping two names
    works. An output that is also a graph input gets an Identity node so the
    other side keeps its name.
    """
    import onnx_ir as ir
    from graphkit_plugins._common.names import listing, names_in_use

    graph = model.graph
    inputs = {v.name: v for v in graph.inputs}
    outputs = {v.name: v for v in graph.outputs}
    problems = []
    for old in params.inputs:
        if old not in inputs:
            problems.append(f"no graph input named {old!r} (inputs: {listing(inputs)})")
    for old in params.outputs:
        if old not in outputs:
            problems.append(f"no graph output named {old!r} (outputs: {listing(outputs)})")
    for new in [*params.inputs.values(), *params.outputs.values()]:
        if not new:
            problems.append("a new name cannot be empty")
    if problems:
        raise PassError("; ".join(problems))

    # A value that is both a graph input and output and gets two different
    # names is split by an Identity, so renaming one side leaves the other.
    splits: dict[ir.Value, str] = {}
    for value in graph.outputs:
        if value.is_graph_input():
            name = value.name
            if params.inputs.get(name, name) != params.outputs.get(name, name):
                splits[value] = params.outputs.get(name, name)
    wanted = {inputs[old]: new for old, new in params.inputs.items()}
    wanted.update(
        {outputs[old]: new for old, new in params.outputs.items() if outputs[old] not in splits}
    )

    claimed: dict[str, str] = {}
    for value, new in [*wanted.items(), *splits.items()]:
        if claimed.setdefault(new, value.name) != value.name:
            problems.append(
                f"{claimed[new]!r} and {value.name!r} cannot both be renamed to {new!r}"
            )
    used = names_in_use(model)
    for value, new in [*wanted.items(), *splits.items()]:
        holder = used.get(new)
        if holder is not None and holder is not value and holder not in wanted:
            problems.append(
                f"cannot rename {value.name!r} to {new!r}: a tensor of that name exists"
            )
    if problems:
        raise PassError("; ".join(problems))

    notes = []
    for value, new in splits.items():
        identity = ir.node("Identity", [value], name=f"{new}_identity")
        graph.append(identity)
        split = identity.outputs[0]
        split.dtype, split.shape = value.dtype, value.shape
        graph.outputs[graph.outputs.index(value)] = split
        wanted[split] = new
        notes.append(
            f"{value.name!r} was both an input and an output: added an Identity to rename one"
        )

    changes = {value: new for value, new in wanted.items() if value.name != new}
    # Two steps, through names nothing uses, so that swaps never collide.
    for number, value in enumerate(changes):
        value.name = f"__graphkit_rename_{number}__"
    for value, new in changes.items():
        value.name = new
    return PassResult(model, modified=bool(changes or notes), notes=notes)


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [rename_io]
