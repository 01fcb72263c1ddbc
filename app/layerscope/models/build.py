"""The steps every source shares: reading ``--device`` and ``--arg``, building on the
device, refusing sizes that cannot fit, and turning a builder's failure into one line.

A builder that fails is translated here, once: a ``TypeError`` is an argument the
builder does not take, a failed download says which flag avoids it, and any other
failure is the user's mistake when they passed ``--arg`` values (else a bug, whose
traceback stays).
"""

from __future__ import annotations

import ast
import difflib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from layerscope.errors import BadArgumentError, LayerscopeError, UnavailableError, first_line
from layerscope.models.meta_build import build_on_meta

DEVICE_TYPES = ("cpu", "cuda", "mps", "meta")
MAX_MODULES = 50_000  # a build stops here: real models hold a few thousand modules at most
MAX_META_SECONDS = 30.0  # and a structure-only build on meta here (real ones take seconds)
MAX_ARG_CHARS = 10_000  # an --arg value longer than this is no size a user types


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``key=value`` strings into keyword arguments; values are Python literals."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise BadArgumentError(f"--arg expects key=value, got {pair[:80]!r}")
        if len(raw) > MAX_ARG_CHARS:
            raise BadArgumentError(f"--arg {key}= is {len(raw):,} characters long; at most {MAX_ARG_CHARS:,} are read")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError):  # ValueError too: 5,000-digit ints
            out[key] = raw
        except (RecursionError, MemoryError) as exc:  # 100,000 minus signs: nested too deep to parse
            raise BadArgumentError(f"--arg {key}= is nested too deeply to read as a Python literal") from exc
    return out


def parse_device(device: str) -> torch.device:
    """Only the device types layerscope supports, and only when torch can reach them here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BadArgumentError(f"unknown device {device!r} (use {', '.join(DEVICE_TYPES)})") from exc
    if dev.type not in DEVICE_TYPES:
        raise BadArgumentError(f"device type {dev.type!r} is not supported (use {', '.join(DEVICE_TYPES)})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnavailableError("--device cuda asked for, but torch sees no CUDA GPU here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UnavailableError("--device mps asked for, but MPS is not available here")
    return dev


@dataclass(frozen=True)
class Download:
    """What a builder downloads when it fails with a network error, and what to do instead."""

    what: str
    advice: str


def call_builder(
    build: Callable[[], nn.Module], *, what: str, kwargs: Mapping[str, Any], download: Download | None = None
) -> nn.Module:
    """``build()``, its failures translated once for every builder source (see the module doc)."""
    try:
        return build()
    except LayerscopeError:
        raise
    except TypeError as exc:
        raise BadArgumentError(f"{what} does not accept those arguments: {first_line(exc)}") from exc
    except (OSError, RuntimeError) as exc:
        if download is not None and is_download_error(exc):
            raise UnavailableError(
                f"could not download {download.what} ({first_line(exc)}); {download.advice}"
            ) from exc
        raise bad_arguments(what, kwargs, exc) from exc
    except (ValueError, AssertionError, KeyError, IndexError, ArithmeticError) as exc:  # round_nearest=0
        raise bad_arguments(what, kwargs, exc) from exc


def bad_arguments(what: str, kwargs: Mapping[str, Any], exc: BaseException) -> BaseException:
    """A builder that fails on the user's ``--arg`` values is a user error; without any, a bug."""
    if not kwargs:
        return exc
    given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return LayerscopeError(f"{what} failed to build with {given}: {first_line(exc)}")


def is_download_error(exc: BaseException) -> bool:
    """A network failure anywhere in the chain of causes (torch hub wraps urllib's)."""
    import urllib.error

    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, (urllib.error.URLError, ConnectionError, TimeoutError)):
            return True
        chain = chain.__cause__ or chain.__context__
    text = str(exc).lower()
    return any(word in text for word in ("urlopen", "download", "name resolution", "connection"))


class BuildTooBig(UnavailableError):
    """A build stopped at ``MAX_MODULES`` modules or ``MAX_META_SECONDS`` seconds."""


@contextmanager
def bounded_build(what: str, *, on_meta: bool) -> Iterator[None]:
    """Stop a build in this thread once it has registered ``MAX_MODULES`` submodules or (a
    build ``on_meta``) run ``MAX_META_SECONDS``: sizes users type (``--arg depth=100000``, a config's
    ``num_hidden_layers``) would otherwise keep it going for minutes, on ``meta`` too, where
    the module objects and their initialisation are the cost. Modules are counted through
    torch's global registration hook; time is checked there and on every torch call."""
    thread, start, count = threading.get_ident(), time.monotonic(), 0
    modules, seconds = MAX_MODULES, MAX_META_SECONDS if on_meta else None

    def check_time() -> None:
        if seconds is not None and time.monotonic() - start > seconds:
            raise BuildTooBig(
                f"{what} stopped while building: over {seconds:.0f} s on the meta device and "
                f"{count:,} modules (layerscope's limit; a structure that size is no real model)"
            )

    def hook(parent: nn.Module, name: str, child: nn.Module | None) -> None:
        nonlocal count
        if threading.get_ident() != thread:
            return
        count += 1
        if count > modules:
            raise BuildTooBig(f"{what} stopped while building: over {modules:,} modules (layerscope's limit)")
        check_time()

    handle = nn.modules.module.register_module_module_registration_hook(hook)
    try:
        if seconds is None:
            yield
        else:
            with _Deadline(check_time):
                yield
    finally:
        handle.remove()


class _Deadline(TorchFunctionMode):
    """Calls ``check`` on every torch function call of this thread (initialising 10,000 layers
    registers no module, but calls torch for each)."""

    def __init__(self, check: Callable[[], None]) -> None:
        super().__init__()
        self.check = check

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.check()
        return func(*args, **(kwargs or {}))


def build_on_device(
    dev: torch.device,
    build: Callable[[], nn.Module],
    what: str,
    kwargs: Mapping[str, Any],
    *,
    sized: bool = True,
    bounded: bool = True,
) -> nn.Module:
    """Build on ``dev`` directly, so ``meta`` never allocates weight memory; with ``sized``,
    the structure is first built on ``meta`` and weights that cannot fit are refused; with
    ``bounded``, a build past ``MAX_MODULES`` (on meta: ``MAX_META_SECONDS``) is stopped."""
    if sized:
        check_fits(dev, _bounded(build, what, on_meta=True) if bounded else build, what, kwargs)
    if bounded:
        build = _bounded(build, what, on_meta=dev.type == "meta")
    try:
        if dev.type == "meta":
            return build_on_meta(build)
        if dev == torch.get_default_device():  # no device mode: it runs Python on every torch call
            return build()  # (building 100,000 modules took 1.4× as long under ``with torch.device("cpu")``)
        with dev:
            return build()
    except LayerscopeError:
        raise
    except Exception as exc:
        if dev.type == "meta":
            raise BadArgumentError(
                f"{what} cannot be built on the meta device ({first_line(exc)}); use --device cpu"
            ) from exc
        raise


def _bounded(build: Callable[[], nn.Module], what: str, *, on_meta: bool) -> Callable[[], nn.Module]:
    def run() -> nn.Module:
        with bounded_build(what, on_meta=on_meta):
            return build()

    return run


def check_fits(dev: torch.device, build: Callable[[], nn.Module], what: str, kwargs: Mapping[str, Any]) -> None:
    """Builder arguments are sizes users type (``--arg num_classes=10000000000`` asks for
    terabytes): build the structure on ``meta`` first, for free, and refuse weights that
    cannot fit."""
    if not kwargs or dev.type == "meta":
        return
    available = available_bytes(dev)
    if available is None:
        return
    try:
        with torch.device("meta"):
            skeleton = build()
    except BuildTooBig:
        raise
    except Exception:
        return  # builders that cannot run on meta meet their own errors in the real build
    tensors = [*skeleton.parameters(), *skeleton.buffers()]
    needed = sum(t.numel() * t.element_size() for t in tensors)
    if needed > available:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise UnavailableError(
            f"{what} with {given} needs {needed / 2**30:,.1f} GiB of weights; "
            f"{dev.type} has {available / 2**30:,.1f} GiB available"
        )


def available_bytes(dev: torch.device) -> int | None:
    """Free memory where the weights would go: MemAvailable on Linux, the GPU's free bytes."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as info:
            line = next(line for line in info if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def unknown_model_message(name: str, known: list[str], listing: str) -> str:
    """``unknown model 'resnet5'; did you mean resnet50, …?``, else where the names are listed."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (see {listing})"
    return f"unknown model {name!r}{hint}"


def refuse_pretrained_on_meta(dev: torch.device) -> None:
    """Published weights need memory to land in; ``meta`` has none."""
    if dev.type == "meta":
        raise BadArgumentError("--device meta builds the structure only; use --weights none with it")


_TRAIN_METHODS = ("train", "eval", "children", "named_children", "__setattr__")


def eval_mode(model: nn.Module) -> None:
    """``model.eval()``, in one loop over the modules instead of a recursive Python call and a
    ``Module.__setattr__`` per module (100,000 modules: 0.11 s instead of 0.28 s). Any class
    that defines its own ``train``, ``eval``, ``children`` or ``__setattr__`` gets torch's own
    ``eval()`` for the whole model, so every module ends exactly as ``eval()`` leaves it."""
    plain: dict[type, bool] = {}
    met = {id(model)}
    stack = [model]
    while stack:
        module = stack.pop()
        cls = type(module)
        known = plain.get(cls)
        if known is None:
            known = plain[cls] = all(getattr(cls, name, None) is getattr(nn.Module, name) for name in _TRAIN_METHODS)
        if not known:
            model.eval()
            return
        object.__setattr__(module, "training", False)
        for child in module._modules.values():
            if child is not None and id(child) not in met:
                met.add(id(child))
                stack.append(child)
