"""The Jinja2 sandbox templates run in, bounded in what they may build, how often they loop and how long.

Jinja's own sandbox stops templates reaching Python internals but not exhausting a process:
`{{ 'a' * 30000000 }}` builds 30 MB, `{{ 10 ** 1000000000 }}` never ends. Here every way a template can
amplify is checked *before* the value is built: the operators `*`, `**`, `%`, `+` and `~`, the
text methods and filters that pad, repeat or join (`center`, `ljust`, `replace`, `join`,
`indent`, `wordwrap`, `format`, `batch`, `tojson` ...), `range` and `lipsum`. Every loop
iteration is counted, every piece of output is counted as it is emitted, and the clock is read at
each operator, call, filter, iteration and output. The limits come from settings when a render starts
(FLOWDECK_TEMPLATE_MAX_BYTES, FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS, FLOWDECK_TEMPLATE_MAX_SECONDS).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import update_wrapper, wraps
from itertools import chain
from typing import Any, NamedTuple

from django.conf import settings
from jinja2 import nodes, pass_environment
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import Markup

_LOG10_2 = math.log10(2)
# printf-style conversions: `%(key)-10.3f`, `%*d`, `%%`.
_PRINTF = re.compile(r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
                     r"(?P<conversion>[a-zA-Z%])")
# str.format specs: `>10`, `,.2f`, `*^120`.
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[a-zA-Z%]?$", re.S)


class TemplateLimitError(Exception):
    """A template went over one of its limits. The message completes "the template ..." and names
    the setting that holds the limit (`setting`)."""

    def __init__(self, message: str, setting: str):
        super().__init__(f"{message} ({setting})")
        self.setting = setting


HINTS = {
    "FLOWDECK_TEMPLATE_MAX_BYTES": "Build smaller values (a large text belongs in a file or an upstream step's "
                                   "output); a platform admin can raise FLOWDECK_TEMPLATE_MAX_BYTES.",
    "FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS": "Loop over fewer items, for example by filtering them upstream; a "
                                             "platform admin can raise FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS.",
    "FLOWDECK_TEMPLATE_MAX_SECONDS": "Make the template do less work; a platform admin can raise "
                                     "FLOWDECK_TEMPLATE_MAX_SECONDS.",
}


class Limits(NamedTuple):
    max_bytes: int
    max_iterations: int
    max_seconds: float

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.FLOWDECK_TEMPLATE_MAX_BYTES, settings.FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS,
                   settings.FLOWDECK_TEMPLATE_MAX_SECONDS)


class Budget:
    """What one template may still do: characters, loop iterations, and a deadline."""

    __slots__ = ("deadline", "emitted", "iterations", "limits")

    def __init__(self, limits: Limits, deadline: float | None = None):
        self.limits, self.deadline = limits, deadline
        self.iterations = self.emitted = 0

    def tick(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TemplateLimitError(f"took longer than {self.limits.max_seconds:g} s, the limit",
                                     "FLOWDECK_TEMPLATE_MAX_SECONDS")

    def allow(self, size: int, what: str) -> None:
        """Refuse to build a value of `size` characters when it is over the limit."""
        if size > self.limits.max_bytes:
            raise TemplateLimitError(f"would build {size:,} characters with {what}, over the limit of "
                                     f"{self.limits.max_bytes:,}", "FLOWDECK_TEMPLATE_MAX_BYTES")

    def emit(self, size: int) -> None:
        self.emitted += size
        if self.emitted > self.limits.max_bytes:
            raise TemplateLimitError(f"renders more than {self.limits.max_bytes:,} characters, the limit",
                                     "FLOWDECK_TEMPLATE_MAX_BYTES")

    def iterate(self, literal_size: int) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise TemplateLimitError(f"loops more than {self.limits.max_iterations:,} times, the limit",
                                     "FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS")
        self.emit(literal_size)
        self.tick()


_active: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


def current() -> Budget:
    budget = _active.get()
    # Outside a render (Jinja folding constants while compiling) the size limits still hold.
    return Budget(Limits.from_settings()) if budget is None else budget


def run_bounded(function: Callable[[Budget], Any], limits: Limits, deadline: float | None) -> Any:
    """`function(budget)` for one template, under a fresh budget of `limits` ending at `deadline`
    (time.monotonic). Plain calls rather than a context manager: this runs for every template."""
    budget = Budget(limits, deadline)
    token = _active.set(budget)
    try:
        return function(budget)
    finally:
        _active.reset(token)


def size_of(value: Any, limit: int, indent: int = 0) -> int:
    """How many characters `value` takes as text, counted up to just past `limit`.

    A list holding one long string 1,000 times is small in memory but not once rendered, so
    containers count every element. `indent` adds a line per element, as `tojson(indent=...)` does.
    Exact types are tested first: this runs for every value a template outputs.
    """
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is int:
        return int(value.bit_length() * _LOG10_2) + 2
    if indent:
        return _indented_size(value, limit, indent)
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            total += len(item) + 2  # quoted inside a container
        elif kind is dict:
            total += 2
            pending.extend(item.keys())
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            total += 2
            pending.extend(item)
        else:
            total += _other_size(item, pending)
        if len(pending) > 4096:
            current().tick()
    return total


def _other_size(item: Any, pending: list) -> int:
    """size_of for subclasses (Markup, OrderedDict ...), sets, numbers and anything else."""
    if isinstance(item, (str, bytes)):
        return len(item) + 2
    if isinstance(item, bool) or item is None or isinstance(item, float):
        return 6
    if isinstance(item, int):
        return int(item.bit_length() * _LOG10_2) + 2
    if isinstance(item, dict):
        pending.extend(part for pair in item.items() for part in pair)
        return 2
    if isinstance(item, (list, tuple, set, frozenset)):
        pending.extend(item)
        return 2
    return 16


def _indented_size(value: Any, limit: int, indent: int) -> int:
    total, pending = 0, [(value, 0)]
    while pending and total <= limit:
        item, depth = pending.pop()
        inner: list = []
        total += _other_size(item, inner) + 1 + indent * depth
        pending.extend((part, depth + 1) for part in inner)
        if len(pending) > 4096:
            current().tick()
    return total


# --- Estimates of what an amplifying operation would build, from its operands ---------------------

def _times(left: Any, right: Any, limit: int) -> int:
    if isinstance(left, int) and isinstance(right, (str, bytes, list, tuple)):
        left, right = right, left
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int):
        return size_of(left, limit) * max(right, 0)
    if isinstance(left, int) and isinstance(right, int):
        return size_of(left, limit) + size_of(right, limit)
    return 0


def _power(base: Any, exponent: Any) -> int:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        return int(exponent * base.bit_length() * _LOG10_2)
    return 0


def _printf(text: str, args: Any, limit: int) -> int:
    """The most `text % args` can build: the text, every width and precision, every value."""
    mapping = args if isinstance(args, dict) else None
    values = iter(args if isinstance(args, tuple) else (args,))
    total = len(text)
    for match in _PRINTF.finditer(text):
        for part in ("width", "precision"):
            given = match.group(part)
            if given == "*":
                given = next(values, 0)
            total += given if isinstance(given, int) else int(given or 0)
        if match.group("conversion") != "%":
            key = match.group("key")
            value = mapping.get(key) if mapping is not None and key is not None else next(values, None)
            total += size_of(value, limit)
    return total


def _padded(text, width=0, *_):
    return max(len(text), width if isinstance(width, int) else 0)


def _replaced(text, old, new, count=-1):
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _joined(separator, items, limit):
    return sum(size_of(item, limit) for item in items) + len(separator) * max(len(items) - 1, 0)


def _indented(text, width=4, *_, **__):
    lines = str(text).count("\n") + 1
    return len(str(text)) + lines * (len(width) if isinstance(width, str) else max(width, 0))


def _wrapped(text, width=79, break_long_words=True, wrapstring=None, *_, **__):
    # Each character may start a line, each line ends with `wrapstring`.
    return len(str(text)) * (1 + len(wrapstring or "\n"))


def _translated(text, table, *_):
    longest = max((len(v) for v in table.values() if isinstance(v, (str, bytes))), default=1) \
        if isinstance(table, dict) else 1
    return len(text) * max(longest, 1)


# Methods of str and bytes that can build more than they read, and what they would build.
_TEXT_METHODS: dict[str, Callable[..., int]] = {
    "ljust": _padded, "rjust": _padded, "center": _padded, "zfill": _padded,
    "expandtabs": lambda text, tabsize=8: len(text) + text.count("\t" if isinstance(text, str) else b"\t") * tabsize,
    "replace": _replaced, "translate": _translated,
}


# --- The environment -----------------------------------------------------------------------------

def _literal_size(body: list[nodes.Node]) -> int:
    """Characters of fixed text a loop body writes each time round (nested loops count their own)."""
    total = 0
    for node in body:
        if isinstance(node, nodes.For):
            continue
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            total += len(node.value)
        total += _literal_size(list(node.iter_child_nodes()))
    return total


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles loops to count their iterations, and `~` to check its size before joining."""

    def visit_For(self, node: nodes.For, frame) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("bounded_loop"),
                               [node.iter, nodes.Const(_literal_size(node.body))], [], None, None,
                               lineno=node.lineno)
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.bounded_concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class _BoundedFormatterMixin:
    """`str.format`: counts what each field adds before formatting it."""

    def vformat(self, format_string, args, kwargs):
        self._built = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value, format_spec):
        budget = current()
        spec = _FORMAT_SPEC.match(format_spec)
        padding = int(spec.group("width") or 0) + int(spec.group("precision") or 0) if spec else 0
        self._built += size_of(value, budget.limits.max_bytes) + padding
        budget.allow(self._built, "`format()`")
        return super().format_field(value, format_spec)


class _BoundedFormatter(_BoundedFormatterMixin, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatterMixin, SandboxedEscapeFormatter):
    pass


class BoundedSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    # Intercepted operators are also never folded at compile time, where they would run unbounded.
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options):
        super().__init__(finalize=_emitted, **options)
        self.globals.update(range=_range, lipsum=_lipsum)
        for name, estimate in _FILTER_ESTIMATES.items():
            self.filters[name] = _bounded_filter(name, self.filters[name], estimate)
        self.filters["sum"] = _bounded_filter("sum", _linear_sum, _summed)
        for name in _TEXT_FILTERS:
            self.filters[name] = _bounded_filter(name, self.filters[name], None)

    def call_binop(self, context, operator, left, right):
        budget = current()
        budget.tick()
        limit = budget.limits.max_bytes
        if operator == "*":
            budget.allow(_times(left, right, limit), "`*`")
        elif operator == "**":
            budget.allow(_power(left, right), "`**`")
        elif operator == "%" and isinstance(left, str):
            budget.allow(_printf(left, right, limit), "`%`")
        elif operator == "+" and isinstance(left, (str, list, tuple)):
            budget.allow(size_of(left, limit) + size_of(right, limit), "`+`")
        return super().call_binop(context, operator, left, right)

    def bounded_concat(self, values: tuple) -> str:
        budget = current()
        budget.tick()
        limit = budget.limits.max_bytes
        budget.allow(sum(size_of(value, limit) for value in values), "`~`")
        return "".join(str(value) for value in values)

    def bounded_loop(self, iterable, literal_size: int):
        budget = current()
        for item in iterable:
            budget.iterate(literal_size)
            yield item

    def call(__self, __context, __obj, *args, **kwargs):
        budget = current()
        budget.tick()
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        if isinstance(owner, (str, bytes)):
            if name == "join":
                args = (list(args[0]), *args[1:]) if args else args
                budget.allow(_joined(owner, args[0] if args else [], budget.limits.max_bytes), "`join()`")
            elif name in _TEXT_METHODS:
                budget.allow(_TEXT_METHODS[name](owner, *args, **kwargs), f"`{name}()`")
        elif isinstance(owner, int) and name == "to_bytes":
            budget.allow(args[0] if args and isinstance(args[0], int) else 0, "`to_bytes()`")
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, bytes)):
            budget.allow(len(result), f"`{name or 'a call'}()`")
        return result

    def wrap_str_format(self, value):
        # As Jinja's own, with formatters that count what each field adds.
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        text = value.__self__
        formatter = _BoundedEscapeFormatter(self, escape=text.escape) if isinstance(text, Markup) \
            else _BoundedFormatter(self)

        def bounded_format(*args, **kwargs):
            if value.__name__ == "format_map":
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))

        return update_wrapper(bounded_format, value)


def _emitted(value: Any) -> Any:
    """Every `{{ ... }}` passes here before it is turned into text: count it first."""
    budget = current()
    budget.emit(len(value) if type(value) is str else size_of(value, budget.limits.max_bytes))
    return value


def _range(*args) -> range:
    numbers = range(*args)
    limit = current().limits.max_iterations
    if len(numbers) > limit:
        raise TemplateLimitError(f"asks for `range()` of {len(numbers):,} numbers, over the limit of {limit:,} "
                                 f"loop iterations", "FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS")
    return numbers


def _lipsum(n=5, html=True, min=20, max=100):
    # A word and its separator take at most 12 characters.
    current().allow(n * (max * 12 + 10), "`lipsum()`")
    return generate_lorem_ipsum(n, html, min, max)


@pass_environment
def _linear_sum(environment, iterable, attribute=None, start=0):
    """Jinja's `sum`, but lists are chained once instead of copied at every step (quadratic)."""
    from jinja2.filters import do_sum

    items = list(iterable)
    if attribute is None and isinstance(start, list) and all(isinstance(item, list) for item in items):
        return list(chain(start, *items))
    return do_sum(environment, items, attribute, start)


def _summed(iterable, attribute=None, start=0, *, limit):
    return size_of(start, limit) + sum(size_of(item, limit) for item in iterable)


# Filters that can build more than they read, and what they would build (`limit` for size_of).
_FILTER_ESTIMATES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80, *, limit: max(size_of(value, limit), width if isinstance(width, int) else 0),
    "indent": lambda value, *args, limit, **kwargs: _indented(value, *args, **kwargs),
    "wordwrap": lambda value, *args, limit, **kwargs: _wrapped(value, *args, **kwargs),
    "join": lambda value, d="", attribute=None, *, limit: _joined(str(d), value, limit),
    "replace": lambda value, old, new, count=None, *, limit: _replaced(
        str(value), str(old), str(new), -1 if count is None else count),
    "format": lambda value, *args, limit, **kwargs: _printf(str(value), kwargs or args, limit),
    "batch": lambda value, linecount, fill_with=None, *, limit: size_of(value, limit) + (
        linecount * size_of(fill_with, limit) if fill_with is not None else 0),
    "slice": lambda value, slices, fill_with=None, *, limit: size_of(value, limit) + slices * (
        2 + (size_of(fill_with, limit) if fill_with is not None else 0)),
    "tojson": lambda value, indent=None, *, limit: size_of(value, limit, indent or 0),
}
# Filters that turn any value into text: the value is measured before it is turned.
_TEXT_FILTERS = ("string", "pprint", "xmlattr", "urlencode", "e", "escape", "forceescape", "truncate")


def _bounded_filter(name: str, function: Callable, estimate: Callable[..., int] | None) -> Callable:
    passes_first = getattr(function, "jinja_pass_arg", None) is not None

    @wraps(function)
    def bounded(*args, **kwargs):
        budget = current()
        budget.tick()
        limit = budget.limits.max_bytes
        head, (value, *rest) = (args[:1], args[1:]) if passes_first else ((), args)
        if not isinstance(value, (str, bytes, list, tuple, dict)):
            value = list(value) if hasattr(value, "__iter__") and not hasattr(value, "__len__") else value
        if estimate is None:
            budget.allow(size_of(value, limit), f"the `{name}` filter")
        else:
            budget.allow(estimate(value, *rest, limit=limit, **kwargs), f"the `{name}` filter")
        result = function(*head, value, *rest, **kwargs)
        if isinstance(result, str):
            budget.allow(len(result), f"the `{name}` filter")
        return result

    return bounded
