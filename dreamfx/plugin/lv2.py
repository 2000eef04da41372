"""Hosted LV2 plugins: a thin ctypes binding over lilv (Debian's ``liblilv-0-0``) and :class:`LV2Plugin`, a chain
stage with pedalboard's calling convention.

    audio (channels, n) float32
      -> instances (one for a plugin of as many audio ports as channels, one per channel for a mono plugin)
      -> per piece of at most MAX_BLOCK frames: channels copied into the input ports' buffers, run(frames),
         the worker's replies delivered, output ports copied out
      -> (channels, n) float32, delayed by the plugin's reported latency (its latency port)

lilv finds the installed plugins (``lv2ls`` lists them) and their ports; the host gives the features effect
plugins commonly require: URID map and unmap, options (block lengths, sample rate), bounded block length, and a
worker run in step with the audio (the work a plugin schedules during one run is done, and its replies delivered,
before the next: renders stay deterministic).  Atom ports get an empty event sequence; CV ports only when
optional.  Control ports are set by symbol, like a pedalboard plugin's parameters (``plugin.drive = 0.5``),
checked against their ranges; output control ports are read the same way (``plugin.outputs``).

A plugin instance is made at the first block of a sample rate and channel count, and made again by
:meth:`LV2Plugin.reset` (deactivate/activate does not clear every plugin's state), with a random generator of its own
(Dragonfly's reverbs draw from libc's ``rand()``, and so does onnxruntime): a reset plugin renders the same audio
every time.
A fresh instance's first run is one frame long: plugins that glide from an internal start value to their controls
over a run (invada's) then start where lilv's own host (``lv2apply``, frame by frame) starts them, instead of
gliding across the first block.  The plugin's own state (LV2's state interface), where it has one, is saved and
restored as Turtle text (:attr:`LV2Plugin.state`).

Each plugin, with the controls it starts at, first gets a trial run on noise in a child process
(:func:`trial_run`): a plugin that crashes there is refused in one line instead of taking the host down.

Layer: below presets and the chain; imports only dreamfx.audio_io and dreamfx.errors.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from dreamfx.audio_io import to_channels_first
from dreamfx.errors import DreamfxError

MAX_BLOCK = 4096  # frames per run (the options' maxBlockLength)
TRIAL_SECONDS = 60.0  # the longest a plugin's trial run in a child process may take
TRIAL_CHILD = "DREAMFX_LV2_TRIAL"  # set in the child process that runs a trial
ATOM_CAPACITY = 8192  # bytes of an output atom port's buffer
RANDOM_STATE_BYTES = 256  # an instance's random generator state (glibc's initstate: the largest table)

LV2 = "http://lv2plug.in/ns/lv2core#"
EXT = "http://lv2plug.in/ns/ext/"
URID_MAP, URID_UNMAP = EXT + "urid#map", EXT + "urid#unmap"
OPTIONS = EXT + "options#options"
BOUNDED_BLOCK = EXT + "buf-size#boundedBlockLength"
WORKER_SCHEDULE, WORKER_INTERFACE = EXT + "worker#schedule", EXT + "worker#interface"
# Features a plugin may ask for that need nothing from the host.
GIVEN_FREELY = (LV2 + "hardRTCapable", LV2 + "inPlaceBroken", LV2 + "isLive", EXT + "state#loadDefaultState",
                EXT + "state#threadSafeRestore", EXT + "buf-size#fixedBlockLength",
                EXT + "buf-size#powerOf2BlockLength")
SUPPORTED_FEATURES = (URID_MAP, URID_UNMAP, OPTIONS, BOUNDED_BLOCK, WORKER_SCHEDULE) + GIVEN_FREELY


class _Descriptor(ctypes.Structure):
    _fields_ = [("URI", ctypes.c_char_p), ("instantiate", ctypes.c_void_p),
                ("connect_port", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)),
                ("activate", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
                ("run", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32)),
                ("deactivate", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
                ("cleanup", ctypes.c_void_p),
                ("extension_data", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p))]


class _Instance(ctypes.Structure):  # LilvInstance: its functions are inline in lilv.h, called through these fields
    _fields_ = [("descriptor", ctypes.POINTER(_Descriptor)), ("handle", ctypes.c_void_p), ("pimpl", ctypes.c_void_p)]


class _Feature(ctypes.Structure):
    _fields_ = [("URI", ctypes.c_char_p), ("data", ctypes.c_void_p)]


_MAP_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p)
_UNMAP_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32)
_RESPOND_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_SCHEDULE_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)


class _UridMap(ctypes.Structure):
    _fields_ = [("handle", ctypes.c_void_p), ("map", _MAP_FUNCTION)]


class _UridUnmap(ctypes.Structure):
    _fields_ = [("handle", ctypes.c_void_p), ("unmap", _UNMAP_FUNCTION)]


class _Option(ctypes.Structure):
    _fields_ = [("context", ctypes.c_uint32), ("subject", ctypes.c_uint32), ("key", ctypes.c_uint32),
                ("size", ctypes.c_uint32), ("type", ctypes.c_uint32), ("value", ctypes.c_void_p)]


class _WorkerSchedule(ctypes.Structure):
    _fields_ = [("handle", ctypes.c_void_p), ("schedule_work", _SCHEDULE_FUNCTION)]


class _WorkerInterface(ctypes.Structure):
    _fields_ = [("work", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _RESPOND_FUNCTION, ctypes.c_void_p,
                                          ctypes.c_uint32, ctypes.c_void_p)),
                ("work_response", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)),
                ("end_run", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p))]


_SIGNATURES = {  # lilv function -> (result, arguments); every lilv object is an opaque pointer
    "lilv_world_new": (ctypes.c_void_p, []),
    "lilv_world_load_all": (None, [ctypes.c_void_p]),
    "lilv_world_get_all_plugins": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugins_begin": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugins_next": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_plugins_is_end": (ctypes.c_bool, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_plugins_get": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_plugins_get_by_uri": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_new_uri": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "lilv_node_free": (None, [ctypes.c_void_p]),
    "lilv_node_as_string": (ctypes.c_char_p, [ctypes.c_void_p]),
    "lilv_nodes_free": (None, [ctypes.c_void_p]),
    "lilv_nodes_begin": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_nodes_next": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_nodes_is_end": (ctypes.c_bool, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_nodes_get": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_plugin_get_uri": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugin_get_name": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugin_get_class": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugin_class_get_label": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugin_get_num_ports": (ctypes.c_uint32, [ctypes.c_void_p]),
    "lilv_plugin_get_port_by_index": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_uint32]),
    "lilv_plugin_get_port_ranges_float": (None, [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_float)] * 3),
    "lilv_plugin_get_required_features": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_plugin_instantiate": (ctypes.POINTER(_Instance),
                                [ctypes.c_void_p, ctypes.c_double, ctypes.POINTER(ctypes.POINTER(_Feature))]),
    "lilv_instance_free": (None, [ctypes.POINTER(_Instance)]),
    "lilv_port_is_a": (ctypes.c_bool, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_port_has_property": (ctypes.c_bool, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_port_get_symbol": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_port_get_name": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "lilv_free": (None, [ctypes.c_void_p]),
    "lilv_state_new_from_instance": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(_Instance), ctypes.c_void_p]
                                     + [ctypes.c_char_p] * 4 + [ctypes.c_void_p] * 2 + [ctypes.c_uint32,
                                                                                       ctypes.c_void_p]),
    "lilv_state_new_from_string": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p]),
    "lilv_state_to_string": (ctypes.c_void_p, [ctypes.c_void_p] * 4 + [ctypes.c_char_p, ctypes.c_char_p]),
    "lilv_state_get_num_properties": (ctypes.c_uint32, [ctypes.c_void_p]),
    "lilv_state_get_plugin_uri": (ctypes.c_void_p, [ctypes.c_void_p]),
    "lilv_state_restore": (None, [ctypes.c_void_p, ctypes.POINTER(_Instance), ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_uint32, ctypes.c_void_p]),
    "lilv_state_free": (None, [ctypes.c_void_p]),
}
STATE_URI = b"urn:dreamfx:state"  # the subject of a saved state's Turtle
STATE_FLAGS = 1 | 2  # LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE


@functools.cache
def _lilv():
    """The lilv library with its functions' signatures declared, and its world of installed plugins loaded."""
    name = ctypes.util.find_library("lilv-0")
    if name is None:
        raise DreamfxError("LV2 plugins need lilv, the LV2 host library: apt-get install liblilv-0-0 (and the "
                           "plugins, e.g. apt-get install mda-lv2)")
    lib = ctypes.CDLL(name)
    for function, (result, arguments) in _SIGNATURES.items():
        getattr(lib, function).restype = result
        getattr(lib, function).argtypes = arguments
    world = lib.lilv_world_new()
    lib.lilv_world_load_all(world)
    return lib, world


@functools.cache
def _uri_node(uri: str):
    lib, world = _lilv()
    return lib.lilv_new_uri(world, uri.encode())


def _text(node, free: bool = False) -> str:
    lib, _ = _lilv()
    text = lib.lilv_node_as_string(node).decode() if node else ""
    if node and free:
        lib.lilv_node_free(node)
    return text


def _nodes(nodes) -> list[str]:
    """The strings of a LilvNodes collection (freed)."""
    lib, _ = _lilv()
    texts, it = [], lib.lilv_nodes_begin(nodes)
    while not lib.lilv_nodes_is_end(nodes, it):
        texts.append(_text(lib.lilv_nodes_get(nodes, it)))
        it = lib.lilv_nodes_next(nodes, it)
    lib.lilv_nodes_free(nodes)
    return texts


class _Urids:
    """The process's URID map (URI <-> integer), handed to every plugin as the urid#map / urid#unmap features."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.uris: list[ctypes.Array] = []  # id - 1 -> the URI as a C string kept alive for unmap's callers
        self._map = _MAP_FUNCTION(lambda handle, uri: self.map(uri.decode()))
        self._unmap = _UNMAP_FUNCTION(lambda handle, urid: ctypes.addressof(self.uris[urid - 1])
                                      if 0 < urid <= len(self.uris) else None)
        self.map_feature, self.unmap_feature = _UridMap(None, self._map), _UridUnmap(None, self._unmap)

    def map(self, uri: str) -> int:
        if uri not in self.ids:
            self.uris.append(ctypes.create_string_buffer(uri.encode()))
            self.ids[uri] = len(self.uris)
        return self.ids[uri]


URIDS = _Urids()


@dataclass(frozen=True)
class Port:
    """One port of a plugin: index, symbol, name, kind ("audio", "control", "atom", "cv"), direction ("in" or
    "out"); for control ports the range and default (NaN where the plugin gives none) and properties."""

    index: int
    symbol: str
    name: str
    kind: str
    direction: str
    minimum: float = math.nan
    maximum: float = math.nan
    default: float = math.nan
    integer: bool = False
    toggled: bool = False
    latency: bool = False
    optional: bool = False

    def check(self, value, where: str) -> float:
        """``value`` for this control input port, checked: a number within the port's range (whole for integer
        and toggled ports)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DreamfxError(f"{where}: {self.symbol} = {value!r}: must be a number")
        low, high = self.minimum, self.maximum
        if (math.isfinite(low) and value < low) or (math.isfinite(high) and value > high):
            raise DreamfxError(f"{where}: {self.symbol} = {value!r} is outside its range {low:g}..{high:g}")
        if (self.integer or self.toggled) and value != round(value):
            raise DreamfxError(f"{where}: {self.symbol} = {value!r}: must be a whole number "
                               f"({'0 or 1' if self.toggled else f'{low:g}..{high:g}'})")
        return float(value)

    @property
    def initial(self) -> float:
        """The value the host starts at: the default, else the minimum, else 0."""
        for value in (self.default, self.minimum, 0.0):
            if math.isfinite(value):
                return float(value)


@dataclass(frozen=True)
class PluginInfo:
    """What lilv says of an installed plugin: URI, name, class label, ports, required features."""

    uri: str
    name: str
    kind: str
    ports: tuple[Port, ...]
    required_features: tuple[str, ...]

    def ports_of(self, kind: str, direction: str) -> list[Port]:
        return [p for p in self.ports if p.kind == kind and p.direction == direction]

    @property
    def controls(self) -> dict[str, Port]:
        """Control input ports by symbol (the plugin's parameters)."""
        return {p.symbol: p for p in self.ports_of("control", "in")}

    @property
    def unsupported(self) -> list[str]:
        """Why dreamfx cannot host it (empty when it can): required features it lacks, mandatory CV ports."""
        reasons = [f"it requires the feature {f}" for f in self.required_features if f not in SUPPORTED_FEATURES]
        reasons += [f"its CV port {p.symbol!r}" for p in self.ports if p.kind == "cv" and not p.optional]
        reasons += [f"its port {p.symbol!r} of an unknown type" for p in self.ports if p.kind == "other"
                    and not p.optional]
        return reasons


def installed_plugins() -> list[tuple[str, str]]:
    """(URI, name) of every installed LV2 plugin, sorted by URI."""
    lib, world = _lilv()
    plugins = lib.lilv_world_get_all_plugins(world)
    found, it = [], lib.lilv_plugins_begin(plugins)
    while not lib.lilv_plugins_is_end(plugins, it):
        plugin = lib.lilv_plugins_get(plugins, it)
        found.append((_text(lib.lilv_plugin_get_uri(plugin)), _text(lib.lilv_plugin_get_name(plugin), free=True)))
        it = lib.lilv_plugins_next(plugins, it)
    return sorted(found)


def _plugin(uri: str):
    lib, world = _lilv()
    plugin = lib.lilv_plugins_get_by_uri(lib.lilv_world_get_all_plugins(world), _uri_node(uri))
    if not plugin:
        raise DreamfxError(f"LV2 plugin {uri} is not installed (dreamfx plugins lists those that are; install its "
                           "package, e.g. apt-get install mda-lv2 for http://drobilla.net/plugins/mda/...)")
    return plugin


@functools.cache
def plugin_info(uri: str) -> PluginInfo:
    """The ports and features of the installed plugin ``uri`` (one line naming it when it is not installed)."""
    lib, _ = _lilv()
    plugin = _plugin(uri)
    n = lib.lilv_plugin_get_num_ports(plugin)
    low, high, default = ((ctypes.c_float * n)() for _ in range(3))
    lib.lilv_plugin_get_port_ranges_float(plugin, low, high, default)
    kinds = {"audio": "AudioPort", "control": "ControlPort", "cv": "CVPort"}
    ports = []
    for i in range(n):
        port = lib.lilv_plugin_get_port_by_index(plugin, i)
        is_a = lambda name: lib.lilv_port_is_a(plugin, port, _uri_node(name))  # noqa: E731
        has = lambda name: lib.lilv_port_has_property(plugin, port, _uri_node(name))  # noqa: E731
        kind = next((k for k, cls in kinds.items() if is_a(LV2 + cls)), "atom" if is_a(EXT + "atom#AtomPort")
                    else "other")
        ports.append(Port(i, _text(lib.lilv_port_get_symbol(plugin, port)),
                          _text(lib.lilv_port_get_name(plugin, port), free=True), kind,
                          "in" if is_a(LV2 + "InputPort") else "out", low[i], high[i], default[i],
                          has(LV2 + "integer") or has(LV2 + "enumeration"), has(LV2 + "toggled"),
                          has(LV2 + "reportsLatency"), has(LV2 + "connectionOptional")))
    label = _text(lib.lilv_plugin_class_get_label(lib.lilv_plugin_get_class(plugin)))
    return PluginInfo(uri, _text(lib.lilv_plugin_get_name(plugin), free=True), label, tuple(ports),
                      tuple(_nodes(lib.lilv_plugin_get_required_features(plugin))))


class _Worker:
    """The worker feature, run in step with the audio: work scheduled during run() is done after it, and the
    replies delivered to the plugin before the next run."""

    def __init__(self):
        self.requests: list[bytes] = []
        self.replies: list[bytes] = []
        self.schedule = _WorkerSchedule(None, _SCHEDULE_FUNCTION(self._schedule))
        self._respond = _RESPOND_FUNCTION(self._reply)
        self.interface: _WorkerInterface | None = None

    def _schedule(self, handle, size, data) -> int:
        self.requests.append(ctypes.string_at(data, size))
        return 0

    def _reply(self, handle, size, data) -> int:
        self.replies.append(ctypes.string_at(data, size))
        return 0

    def after_run(self, plugin_handle) -> None:
        if self.interface is None:
            self.requests.clear()
            return
        while self.requests:
            request = self.requests.pop(0)
            self.interface.work(plugin_handle, self._respond, None, len(request), request)
        for reply in self.replies:
            self.interface.work_response(plugin_handle, len(reply), reply)
        self.replies.clear()
        if self.interface.end_run:
            self.interface.end_run(plugin_handle)


@functools.cache
def trial_run(uri: str, controls: tuple[tuple[str, float], ...] = (), state: str | None = None) -> None:
    """Run the plugin with ``controls`` ((symbol, value) pairs) and its own ``state`` restored on 1 s of noise in a
    child process (``python -m dreamfx.plugin.lv2 URI symbol=value ...``, the state on stdin) before this process
    hosts it: a plugin (or lilv reading a state) that crashes or hangs there gets one line instead of taking the
    host down.  Once per plugin, controls, state and process; what a plugin does later, on other controls (a MIDI
    controller's) or audio, is not contained."""
    if os.environ.get(TRIAL_CHILD):
        return
    try:
        child = subprocess.run([sys.executable, "-m", "dreamfx.plugin.lv2", uri,
                                *(f"{symbol}={value!r}" for symbol, value in controls)], input=state or "",
                               capture_output=True, text=True, timeout=TRIAL_SECONDS,
                               env={**os.environ, TRIAL_CHILD: "1"})
    except subprocess.TimeoutExpired:
        raise DreamfxError(f"LV2 plugin {uri} hung in a trial run (over {TRIAL_SECONDS:g} s on 1 s of noise in a "
                           "child process): dreamfx does not host it") from None
    if child.returncode < 0:
        raise DreamfxError(f"LV2 plugin {uri} crashed in a trial run in a child process "
                           f"({signal.Signals(-child.returncode).name}"
                           f"{', restoring its saved state' if state else ''}): dreamfx does not host it")
    if child.returncode != 0:
        lines = [line for line in child.stderr.splitlines() if line.strip()]
        raise DreamfxError(lines[-1] if lines else f"LV2 plugin {uri}: its trial run failed ({child.returncode})")


@functools.cache
def _libc():
    """libc, for its random generator: each instance draws from a state of its own, swapped in around its runs
    (glibc's rand() is random(), whose state setstate() chooses), so a plugin that draws from rand() (Dragonfly's
    reverbs) renders the same whatever else in the process draws from it (onnxruntime does)."""
    libc = ctypes.CDLL(None)
    libc.initstate.restype, libc.initstate.argtypes = ctypes.c_void_p, [ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
    libc.setstate.restype, libc.setstate.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    return libc


class _Running:
    """One instance of a plugin at one sample rate, its ports connected to buffers it keeps."""

    def __init__(self, info: PluginInfo, sample_rate: float, controls: dict[str, float], state: str | None = None):
        lib, world = _lilv()
        self.info, self.worker = info, _Worker()
        block, rate = ctypes.c_int32(MAX_BLOCK), ctypes.c_float(sample_rate)
        atom_int, atom_float = URIDS.map(EXT + "atom#Int"), URIDS.map(EXT + "atom#Float")
        options = (_Option * 4)(*[_Option(0, 0, URIDS.map(EXT + key), 4, kind, ctypes.addressof(value))
                                  for key, kind, value in (("buf-size#maxBlockLength", atom_int, block),
                                                           ("buf-size#nominalBlockLength", atom_int, block),
                                                           ("parameters#sampleRate", atom_float, rate))], _Option())
        data = {URID_MAP: ctypes.addressof(URIDS.map_feature), URID_UNMAP: ctypes.addressof(URIDS.unmap_feature),
                OPTIONS: ctypes.addressof(options), WORKER_SCHEDULE: ctypes.addressof(self.worker.schedule),
                BOUNDED_BLOCK: None}
        features = [_Feature(uri.encode(), address) for uri, address in data.items()]
        feature_array = (ctypes.POINTER(_Feature) * (len(features) + 1))(*map(ctypes.pointer, features), None)
        self._alive = (block, rate, options, features, feature_array)  # what the plugin may keep pointers to
        self.instance = lib.lilv_plugin_instantiate(_plugin(info.uri), sample_rate, feature_array)
        if not self.instance:
            raise DreamfxError(f"LV2 plugin {info.name} ({info.uri}) failed to start at {sample_rate:g} Hz")
        self.descriptor, self.handle = self.instance.contents.descriptor.contents, self.instance.contents.handle
        if self.descriptor.extension_data:
            address = self.descriptor.extension_data(WORKER_INTERFACE.encode())
            self.worker.interface = _WorkerInterface.from_address(address) if address else None
        self.values = (ctypes.c_float * len(info.ports))()
        self.audio = {p.index: np.zeros(MAX_BLOCK, np.float32) for p in info.ports if p.kind == "audio"}
        self.atoms = {p.index: (ctypes.c_uint32 * (ATOM_CAPACITY // 4))() for p in info.ports if p.kind == "atom"}
        for port in info.ports:
            if port.kind == "control":
                self.values[port.index] = controls.get(port.symbol, port.initial)
                address = ctypes.addressof(self.values) + 4 * port.index
            elif port.kind == "audio":
                address = self.audio[port.index].ctypes.data
            elif port.kind == "atom":
                address = ctypes.addressof(self.atoms[port.index])
            else:  # optional CV or unknown ports stay unconnected
                address = None
            self.descriptor.connect_port(self.handle, port.index, address)
        if state is not None:
            saved = lib.lilv_state_new_from_string(world, ctypes.addressof(URIDS.map_feature), state.encode())
            if not saved or _text(lib.lilv_state_get_plugin_uri(saved)) != info.uri:  # lilv crashes on another's
                if saved:
                    lib.lilv_state_free(saved)
                raise DreamfxError(f"LV2 plugin {info.name}: its saved state is not valid Turtle of a state of this "
                                   "plugin (lv2_state in the preset): save the preset again")
            lib.lilv_state_restore(saved, self.instance, None, None, STATE_FLAGS, feature_array)
            lib.lilv_state_free(saved)
        if self.descriptor.activate:
            self.descriptor.activate(self.handle)
        self.random_state = ctypes.create_string_buffer(RANDOM_STATE_BYTES)  # this instance's rand() (see _libc)
        _libc().setstate(_libc().initstate(0, self.random_state, RANDOM_STATE_BYTES))
        self.inputs = [p.index for p in info.ports_of("audio", "in")]
        self.outputs = [p.index for p in info.ports_of("audio", "out")]

    def run(self, frames: int) -> None:
        """run() on the frames already in the input buffers, then the worker's turn."""
        sequence, chunk = URIDS.map(EXT + "atom#Sequence"), URIDS.map(EXT + "atom#Chunk")
        for port in self.info.ports:
            if port.kind == "atom":  # an empty event sequence in, room for the plugin's events out
                self.atoms[port.index][:2] = (8, sequence) if port.direction == "in" else (ATOM_CAPACITY - 8, chunk)
        others = _libc().setstate(self.random_state)
        try:
            self.descriptor.run(self.handle, frames)
            self.worker.after_run(self.handle)
        finally:
            _libc().setstate(others)

    def state(self) -> str | None:
        """The plugin's own state (what it keeps beyond its control ports, through the LV2 state interface) as
        Turtle, or None when it keeps none."""
        lib, world = _lilv()
        saved = lib.lilv_state_new_from_instance(_plugin(self.info.uri), self.instance,
                                                 ctypes.addressof(URIDS.map_feature), None, None, None, None, None,
                                                 None, STATE_FLAGS, self._alive[-1])
        if not saved:
            return None
        try:
            if lib.lilv_state_get_num_properties(saved) == 0:
                return None
            text = lib.lilv_state_to_string(world, ctypes.addressof(URIDS.map_feature),
                                            ctypes.addressof(URIDS.unmap_feature), saved, STATE_URI, None)
            turtle = ctypes.string_at(text).decode()
            lib.lilv_free(text)
            return turtle
        finally:
            lib.lilv_state_free(saved)

    def close(self) -> None:
        lib, _ = _lilv()
        if self.descriptor.deactivate:
            self.descriptor.deactivate(self.handle)
        lib.lilv_instance_free(self.instance)


class LV2Plugin:
    """An installed LV2 plugin as a chain stage: ``LV2Plugin("http://drobilla.net/plugins/mda/Overdrive",
    drive=0.5)(audio, sample_rate)``; controls are attributes (``plugin.drive = 0.7``, by port symbol), checked
    against their ranges; ``lv2_state``: the plugin's own state to restore (see :attr:`state`).

    Audio ports by channel: a plugin with as many audio inputs and outputs as the audio has channels gets one
    channel per port; a mono plugin (1 in, 1 out) runs once per channel; a 1-in-2-out plugin takes the channels'
    mean (stereo audio gets both outputs, mono the outputs' mean); a 2-in-2-out plugin given mono gets it on both
    inputs, and the outputs' mean is returned.
    """

    is_effect = True
    is_instrument = False

    def __init__(self, uri: str, lv2_state: str | None = None, **controls):
        info = plugin_info(uri)
        if info.unsupported:
            raise DreamfxError(f"LV2 plugin {info.name} ({uri}) cannot be hosted by dreamfx: "
                               f"{'; '.join(info.unsupported)}")
        audio_in, audio_out = len(info.ports_of("audio", "in")), len(info.ports_of("audio", "out"))
        if (audio_in, audio_out) not in ((1, 1), (1, 2), (2, 2)):
            raise DreamfxError(f"LV2 plugin {info.name} ({uri}) has {audio_in} audio inputs and {audio_out} "
                               "outputs: dreamfx hosts effects of 1 in 1 out, 1 in 2 out or 2 in 2 out")
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "_values", {s: p.initial for s, p in info.controls.items()})
        object.__setattr__(self, "_running", [])
        object.__setattr__(self, "_layout", None)  # (sample rate, channels) the instances were made for
        object.__setattr__(self, "_latency", {})  # (sample rate, controls) -> reported latency
        object.__setattr__(self, "_started", False)  # whether the instances have run
        object.__setattr__(self, "_state", None)  # the plugin's own state (Turtle) to restore in new instances
        for symbol, value in controls.items():
            setattr(self, symbol, value)
        trial_run(uri, tuple(sorted(self._values.items())), lv2_state)
        if lv2_state is not None:
            self.state = lv2_state

    @property
    def uri(self) -> str:
        return self.info.uri

    @property
    def parameters(self) -> dict[str, float]:
        """The control input ports' values by symbol (set them as attributes)."""
        return dict(self._values)

    @property
    def outputs(self) -> dict[str, float]:
        """The control output ports' values after the last block (the first instance's), by symbol."""
        running = self._running[0] if self._running else None
        return {p.symbol: float(running.values[p.index]) if running else math.nan
                for p in self.info.ports_of("control", "out")}

    def __getattr__(self, name: str):
        info = self.__dict__["info"]
        if name in info.controls:
            return self._values[name]
        if name in {p.symbol for p in info.ports_of("control", "out")}:
            return self.outputs[name]
        raise AttributeError(f"LV2 plugin {info.name} has no control {name!r}; its controls: "
                             f"{', '.join(info.controls) or 'none'}")

    @property
    def state(self) -> str | None:
        """The plugin's own state, beyond its controls (LV2's state interface: e.g. Dragonfly's chosen preset), as
        Turtle text; None when it keeps none.  Set it (``plugin.state = text``) to restore it: new instances
        start from it."""
        if self._running:
            return self._running[0].state()
        running = _Running(self.info, 48000.0, self._values, self._state)
        try:
            return running.state()
        finally:
            running.close()

    def __setattr__(self, name: str, value) -> None:
        if name == "state":
            if value is not None and not isinstance(value, str):
                raise DreamfxError(f"LV2 plugin {self.info.name}: its state is Turtle text, not {type(value).__name__}")
            trial_run(self.uri, tuple(sorted(self._values.items())), value)  # lilv crashes on some bad texts
            _Running(self.info, 48000.0, self._values, value).close()  # fails now on text lilv cannot read
            object.__setattr__(self, "_state", value)
            self.reset()
            return
        port = self.info.controls.get(name)
        if port is None:
            raise DreamfxError(f"LV2 plugin {self.info.name} ({self.uri}) has no control {name!r}; it takes "
                               f"{', '.join(self.info.controls) or 'no controls'}")
        self._values[name] = port.check(value, f"LV2 plugin {self.info.name}")
        for running in self._running:
            running.values[port.index] = self._values[name]

    def latency_samples(self, sample_rate: float) -> int:
        """The delay the plugin reports at ``sample_rate`` (its latency port after one empty run), in samples."""
        ports = [p for p in self.info.ports if p.latency and p.kind == "control" and p.direction == "out"]
        if not ports:
            return 0
        key = (sample_rate, tuple(self._values.items()))
        if key not in self._latency:
            running = _Running(self.info, sample_rate, self._values, self._state)
            try:
                running.run(0)
                self._latency[key] = max(0, round(running.values[ports[0].index]))
            finally:
                running.close()
        return self._latency[key]

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = MAX_BLOCK,
                reset: bool = True) -> np.ndarray:
        """Run audio (channels, samples) or (samples,) float32 through the plugin in pieces of at most
        ``buffer_size`` (and :data:`MAX_BLOCK`) frames; ``reset``: start from a fresh instance."""
        audio, restore = to_channels_first(input_array)
        if reset:
            self.reset()
        channels = audio.shape[0]
        if self._layout != (sample_rate, channels):
            self._start(sample_rate, channels)
        out = np.empty_like(audio)
        for start, end in self._runs(audio.shape[1], max(1, int(buffer_size))):
            out[:, start:end] = self._run(audio[:, start:end])
        if not np.isfinite(out).all():
            raise DreamfxError(f"LV2 plugin {self.info.name} ({self.uri}) produced NaN or Inf: check its controls "
                               f"({', '.join(f'{k}={v:g}' for k, v in self._values.items())})")
        return restore(out)

    __call__ = process

    def _runs(self, frames: int, block: int) -> list[tuple[int, int]]:
        """(start, end) of the runs over ``frames``: blocks of ``block`` (a chain's FIFO gives whole ones, so runs
        fall alike in every render), each cut into runs of at most MAX_BLOCK; a fresh instance's first run is one
        frame long (see the module docstring)."""
        runs = [(at, min(at + MAX_BLOCK, start + block, frames)) for start in range(0, frames, block)
                for at in range(start, min(start + block, frames), MAX_BLOCK)]
        if not self._started and runs:
            object.__setattr__(self, "_started", True)
            first_start, first_end = runs[0]
            runs[:1] = [(first_start, first_start + 1)] + ([(first_start + 1, first_end)] if first_end > 1 else [])
        return runs

    def _start(self, sample_rate: float, channels: int) -> None:
        self.reset()
        if channels > 2 and len(self.info.ports_of("audio", "in")) > 1:
            raise DreamfxError(f"LV2 plugin {self.info.name} ({self.uri}) is stereo: give it mono or stereo audio, "
                               f"not {channels} channels")
        per_channel = len(self.info.ports_of("audio", "in")) == len(self.info.ports_of("audio", "out")) == 1
        self._running.extend(_Running(self.info, sample_rate, self._values, self._state)
                             for _ in range(channels if per_channel else 1))
        object.__setattr__(self, "_layout", (sample_rate, channels))

    def _run(self, audio: np.ndarray) -> np.ndarray:
        """audio (channels, n <= MAX_BLOCK) through the instances."""
        channels, n = audio.shape
        if len(self._running) > 1:  # a mono plugin per channel
            results = []
            for running, channel in zip(self._running, audio):
                running.audio[running.inputs[0]][:n] = channel
                running.run(n)
                results.append(running.audio[running.outputs[0]][:n].copy())
            return np.stack(results)
        running = self._running[0]
        ins = audio if len(running.inputs) == channels else (audio.mean(axis=0, keepdims=True)
                                                             if len(running.inputs) == 1 else np.repeat(audio, 2, 0))
        for port, channel in zip(running.inputs, ins):
            running.audio[port][:n] = channel
        running.run(n)
        outs = np.stack([running.audio[port][:n] for port in running.outputs])
        return outs if len(outs) == channels else outs.mean(axis=0, keepdims=True)

    def reset(self) -> None:
        """Forget the instances (the next block makes fresh ones): the plugin starts from its initial state."""
        for running in self._running:
            running.close()
        self._running.clear()
        object.__setattr__(self, "_layout", None)
        object.__setattr__(self, "_started", False)

    def __del__(self):
        if "_running" in self.__dict__:
            self.reset()

    def __repr__(self) -> str:
        return f"<dreamfx.LV2Plugin {self.info.name} ({self.uri})>"


if __name__ == "__main__":  # a trial run (see trial_run): 1 s of stereo noise at 48 kHz in pieces of 256 frames
    try:
        noise = np.random.default_rng(0).normal(0.0, 0.1, (2, 48000)).astype(np.float32)
        controls = {symbol: float(value) for symbol, _, value in (arg.partition("=") for arg in sys.argv[2:])}
        LV2Plugin(sys.argv[1], sys.stdin.read() or None, **controls)(noise, 48000, buffer_size=256)
    except DreamfxError as exc:
        sys.exit(f"{exc}")
