"""Walks over a dataflow graph given in topological order: the one home of "does this node lead to X".

The INT8 paths ask the same questions of two graph types: `export/quantize.py` of ONNX nodes (which
Convs are head predictions, which Add/MaxPool/Resize feed a quantized Conv, what follows the float
head) and `export/calibrator.py` of TensorRT layers (which layers to pin out of INT8). Each keeps a
small adapter saying how its nodes name their input and output tensors; the walks live here once, so
a fix to one is a fix to both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

Node = TypeVar("Node")


def consumer_relation(
    nodes: Iterable[Node],
    inputs: Callable[[Node], Iterable[str]],
    outputs: Callable[[Node], Iterable[str]],
) -> Callable[[Node], list[Node]]:
    """`users(node)`: the nodes that read any output tensor of `node` (one entry per tensor read)."""
    readers: dict[str, list[Node]] = {}
    for node in nodes:
        for name in inputs(node):
            readers.setdefault(name, []).append(node)

    def users(node: Node) -> list[Node]:
        return [user for name in outputs(node) for user in readers.get(name, [])]

    return users


def reaches(
    nodes: Sequence[Node],
    users: Callable[[Node], Iterable[Node]],
    is_target: Callable[[Node], bool],
    passes_through: Callable[[Node], bool] = lambda node: True,
) -> list[bool]:
    """Per node of `nodes` (same order): whether some path of consumers from it arrives at a node where
    `is_target` holds, every node strictly between them satisfying `passes_through`.

    `users` must answer with objects from `nodes` (build it with `consumer_relation(nodes, ...)` on the
    same list: protobuf may give a node a new Python wrapper on each pass over the graph, so identity
    only holds among objects one list keeps alive).
    `nodes` must be topological (ONNX node order and TensorRT layer order are), so walking it backwards
    decides every user before its producer: one pass, no recursion on deep graphs.
    """
    position = {id(node): index for index, node in enumerate(nodes)}
    reached = [False] * len(nodes)
    for index in range(len(nodes) - 1, -1, -1):
        reached[index] = any(
            is_target(user) or (passes_through(user) and reached[position[id(user)]]) for user in users(nodes[index])
        )
    return reached


def downstream(
    nodes: Iterable[Node],
    inputs: Callable[[Node], Iterable[str]],
    outputs: Callable[[Node], Iterable[str]],
    is_source: Callable[[Node], bool],
) -> list[Node]:
    """The nodes (in order) that read, directly or not, an output of a source node; sources excluded."""
    tainted: set[str] = set()
    found = []
    for node in nodes:  # topological
        source = is_source(node)
        if source or tainted.intersection(inputs(node)):
            tainted.update(outputs(node))
            if not source:
                found.append(node)
    return found
