"""A thin ctypes binding over lilv (Debian's ``liblilv-0-0``), the LV2 project's own host library: the installed
plugins and their ports (:func:`installed_plugins`, :func:`plugin_info`), and :class:`Instance`, one running
instance of a plugin with its ports connected to buffers it keeps.

    lilv world (every bundle on LV2_PATH) -> plugin (ports, ranges, required features)
      -> Instance(sample rate, controls, state): instantiate with the host's features, connect, activate
      -> run(frames) on the input buffers -> the worker's turn -> output buffers and output control values

The host gives the features effect plugins commonly require: URID map and unmap, options (block lengths,
sample rate), bounded block length, and a worker run in step with the audio (the work a plugin schedules during
one run is done, and its replies delivered, before the next: renders stay deterministic).  Atom ports get an
empty event sequence; CV ports are left unconnected (only optional ones are accepted).  Each instance runs in a
random generator state and floating-point environment of its own (Dragonfly's reverbs draw from libc's
``rand()``, as onnxruntime does, and turn on flush-to-zero): nothing a plugin changes reaches the host.
lilv's instance functions are inline in its header, so they are called through the descriptor's fields.

Layer: below :mod:`dreamfx.plugin.lv2` (the chain stage); imports only numpy and dreamfx.errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
from dataclasses import dataclass

import numpy as np

from dreamfx.errors import DreamfxError, PluginMissing

MAX_BLOCK = 4096  # frames per run (the options' maxBlockLength)
ATOM_CAPACITY = 8192  # bytes of an output atom port's buffer
RANDOM_STATE_BYTES = 256  # an instance's random generator state (glibc's initstate: the largest table)
FENV_BYTES = 256  # room for a fenv_t (32 bytes on x86-64 glibc)

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
    logarithmic: bool = False  # the port-props extension's hint: a knob sweeps it in equal ratios

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
    def latency_port(self) -> Port | None:
        """The control output port that reports the plugin's latency in samples, if it has one."""
        return next((p for p in self.ports_of("control", "out") if p.latency), None)

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
        raise PluginMissing(f"LV2 plugin {uri} is not installed (dreamfx plugins lists those that are; install its "
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
                          has(LV2 + "reportsLatency"), has(LV2 + "connectionOptional"),
                          has(EXT + "port-props#logarithmic")))
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
def _libc():
    """libc (and libm's fenv functions), for what a plugin may change of the process around it: the random
    generator (glibc's rand() is random(), whose state setstate() chooses) and the floating-point environment
    (fegetenv/fesetenv; Dragonfly's reverbs turn on flush-to-zero, which changed what numpy and torch compute in
    the same thread after them)."""
    libc = ctypes.CDLL(None)
    libc.initstate.restype, libc.initstate.argtypes = ctypes.c_void_p, [ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
    libc.setstate.restype, libc.setstate.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    return libc


@functools.cache
def _libm():
    """libm, for fegetenv/fesetenv (see :func:`_libc`)."""
    return ctypes.CDLL(ctypes.util.find_library("m"))


class Instance:
    """One instance of a plugin at one sample rate, its ports connected to buffers it keeps.

    Every call into the plugin runs in an environment of its own (:meth:`_inside`): its random generator state
    (Dragonfly's reverbs draw from rand(), and so does onnxruntime) and its floating-point environment are
    swapped in around the call and the host's swapped back after it, so the plugin renders the same whatever
    else the process does, and leaves nothing changed behind."""

    def __init__(self, info: PluginInfo, sample_rate: float, controls: dict[str, float], state: str | None = None):
        lib, world = _lilv()
        self.info, self.worker = info, _Worker()
        self.random_state, self.fp_state = ctypes.create_string_buffer(RANDOM_STATE_BYTES), \
            ctypes.create_string_buffer(FENV_BYTES)
        self._host = (ctypes.create_string_buffer(FENV_BYTES), ctypes.c_void_p())  # the host's, while inside
        libc = _libc()
        libc.setstate(libc.initstate(0, self.random_state, RANDOM_STATE_BYTES))
        _libm().fegetenv(self.fp_state)  # the plugin starts in the host's floating-point environment
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
        with self._inside():
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
        with self._inside():
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
                try:
                    self._restore(state)
                except DreamfxError:
                    lib.lilv_instance_free(self.instance)
                    raise
            if self.descriptor.activate:
                self.descriptor.activate(self.handle)
        # written into the atom ports before each run: an empty event sequence in, room for the plugin's events out
        sequence, chunk = URIDS.map(EXT + "atom#Sequence"), URIDS.map(EXT + "atom#Chunk")
        self._atom_headers = [(self.atoms[p.index], (8, sequence) if p.direction == "in" else
                               (ATOM_CAPACITY - 8, chunk)) for p in info.ports if p.kind == "atom"]
        self.inputs = [p.index for p in info.ports_of("audio", "in")]
        self.outputs = [p.index for p in info.ports_of("audio", "out")]

    @contextlib.contextmanager
    def _inside(self):
        """Calls into the plugin run in its own random generator state and floating-point environment."""
        libc, libm, (host_fp, host_random) = _libc(), _libm(), self._host
        libm.fegetenv(host_fp)
        libm.fesetenv(self.fp_state)
        host_random.value = libc.setstate(self.random_state)
        try:
            yield
        finally:
            libc.setstate(host_random)
            libm.fegetenv(self.fp_state)
            libm.fesetenv(host_fp)

    def _restore(self, state: str) -> None:
        """Restore the plugin's own state from Turtle text (see :meth:`state`)."""
        lib, world = _lilv()
        saved = lib.lilv_state_new_from_string(world, ctypes.addressof(URIDS.map_feature), state.encode())
        if not saved or _text(lib.lilv_state_get_plugin_uri(saved)) != self.info.uri:  # lilv crashes on another's
            if saved:
                lib.lilv_state_free(saved)
            raise DreamfxError(f"LV2 plugin {self.info.name}: its saved state is not valid Turtle of a state of this "
                               "plugin (lv2_state in the preset): save the preset again")
        lib.lilv_state_restore(saved, self.instance, None, None, STATE_FLAGS, self._alive[-1])
        lib.lilv_state_free(saved)

    def run(self, frames: int) -> None:
        """run() on the frames already in the input buffers, then the worker's turn."""
        for buffer, header in self._atom_headers:
            buffer[:2] = header
        with self._inside():
            self.descriptor.run(self.handle, frames)
            self.worker.after_run(self.handle)

    def state(self) -> str | None:
        """The plugin's own state (what it keeps beyond its control ports, through the LV2 state interface) as
        Turtle, or None when it keeps none."""
        lib, world = _lilv()
        with self._inside():
            saved = lib.lilv_state_new_from_instance(_plugin(self.info.uri), self.instance,
                                                     ctypes.addressof(URIDS.map_feature), None, None, None, None,
                                                     None, None, STATE_FLAGS, self._alive[-1])
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
        with self._inside():
            if self.descriptor.deactivate:
                self.descriptor.deactivate(self.handle)
            lib.lilv_instance_free(self.instance)
