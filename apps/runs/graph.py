"""The run's step graph laid out for an SVG: grandalf's Sugiyama layout, one layer per depth,
dependencies pointing down. Unconnected parts of the graph sit side by side.

`step_graph(plan, step_runs)` returns boxes and edges in pixels; the template draws them, colours
each box by its step's state and links it to the step's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

NODE_WIDTH, NODE_HEIGHT = 150, 44
MARGIN, GAP = 16, 40


@dataclass(frozen=True)
class Node:
    step_id: str
    state: str
    state_label: str
    step_type: str
    x: float  # top-left corner
    y: float

    @property
    def label(self) -> str:
        return self.step_id if len(self.step_id) <= 18 else self.step_id[:17] + "…"


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class StepGraph:
    width: float
    height: float
    nodes: list[Node]
    lines: list[Line]
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


class _Box:
    w, h = NODE_WIDTH, NODE_HEIGHT
    xy = (0.0, 0.0)


def step_graph(steps: list[tuple[str, tuple[str, ...]]], step_runs: dict) -> StepGraph:
    """`steps`: (step id, the ids it needs) in spec order; `step_runs`: step id -> StepRun."""
    steps = tuple((step_id, tuple(needs)) for step_id, needs in steps)
    centres = _layout(steps)
    nodes = []
    for step_id, _ in steps:
        x, y = centres[step_id]
        row = step_runs[step_id]
        nodes.append(Node(step_id=step_id, state=row.state, state_label=row.get_state_display(),
                          step_type=row.step_type, x=x - NODE_WIDTH / 2, y=y - NODE_HEIGHT / 2))
    lines = [Line(centres[need][0], centres[need][1] + NODE_HEIGHT / 2,
                  centres[step_id][0], centres[step_id][1] - NODE_HEIGHT / 2)
             for step_id, needs in steps for need in needs]
    width = max((n.x + NODE_WIDTH for n in nodes), default=0) + MARGIN
    height = max((n.y + NODE_HEIGHT for n in nodes), default=0) + MARGIN
    return StepGraph(width=width, height=height, nodes=nodes, lines=lines)


# A run page is opened and polled many times; its graph's shape is its version's, so the layout
# (the costly part) is kept per shape and only the states change per request.
@lru_cache(maxsize=512)
def _layout(steps: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, tuple[float, float]]:
    """Each step's centre in pixels."""
    vertices = {step_id: Vertex(step_id) for step_id, _ in steps}
    for vertex in vertices.values():
        vertex.view = _Box()
    edges = [Edge(vertices[need], vertices[step_id]) for step_id, needs in steps for need in needs]
    graph = Graph(list(vertices.values()), edges)
    centres: dict[str, tuple[float, float]] = {}
    offset = MARGIN
    for component in graph.C:
        layout = SugiyamaLayout(component)
        layout.xspace, layout.yspace = 24, 36
        layout.init_all()
        layout.draw()
        placed = {v.data: v.view.xy for v in component.sV}
        left = min(x for x, _ in placed.values()) - NODE_WIDTH / 2
        top = min(y for _, y in placed.values()) - NODE_HEIGHT / 2
        for step_id, (x, y) in placed.items():
            centres[step_id] = (x - left + offset, y - top + MARGIN)
        offset += max(x for x, _ in placed.values()) - left + NODE_WIDTH / 2 + GAP
    return centres
