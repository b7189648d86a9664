"""A thin ctypes binding to libbpf.so.1 (Debian 12's libbpf1): load a BPF object, read and write its maps,
attach tc programs (clsact) and read a ring buffer. Only what :mod:`agents.datapath.ebpf` needs.

Every call that fails raises :class:`BpfError` naming the call and the kernel's error. Nothing is pinned:
programs and maps live as long as this process holds their descriptors and tc filters reference them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable

BPF_TC_INGRESS = 1
BPF_TC_EGRESS = 2
BPF_ANY = 0


class BpfError(OSError):
    """A libbpf call failed; the message names it."""


class _TcHook(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ifindex", ctypes.c_int),
        ("attach_point", ctypes.c_int),
        ("parent", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class _TcOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("prog_fd", ctypes.c_int),
        ("flags", ctypes.c_uint32),
        ("prog_id", ctypes.c_uint32),
        ("handle", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


SampleCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libbpf.so.1, loaded once (BpfError if absent)."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("bpf") or "libbpf.so.1"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as error:
            raise BpfError(errno.ENOENT, f"libbpf is not installed ({error})") from None
        pointer = ctypes.c_void_p
        lib.bpf_object__open_file.restype = pointer
        lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, pointer]
        lib.bpf_object__load.argtypes = [pointer]
        lib.bpf_object__close.argtypes = [pointer]
        lib.bpf_object__find_program_by_name.restype = pointer
        lib.bpf_object__find_program_by_name.argtypes = [pointer, ctypes.c_char_p]
        lib.bpf_program__fd.argtypes = [pointer]
        lib.bpf_object__find_map_fd_by_name.argtypes = [pointer, ctypes.c_char_p]
        lib.bpf_map_update_elem.argtypes = [ctypes.c_int, pointer, pointer, ctypes.c_uint64]
        lib.bpf_map_delete_elem.argtypes = [ctypes.c_int, pointer]
        lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, pointer, pointer]
        for name in ("bpf_tc_hook_create", "bpf_tc_hook_destroy"):
            getattr(lib, name).argtypes = [ctypes.POINTER(_TcHook)]
        for name in ("bpf_tc_attach", "bpf_tc_detach"):
            getattr(lib, name).argtypes = [ctypes.POINTER(_TcHook), ctypes.POINTER(_TcOpts)]
        lib.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
        lib.ring_buffer__new.restype = pointer
        lib.ring_buffer__new.argtypes = [ctypes.c_int, SampleCallback, pointer, pointer]
        lib.ring_buffer__poll.argtypes = [pointer, ctypes.c_int]
        lib.ring_buffer__free.argtypes = [pointer]
        lib.libbpf_set_print.restype = pointer
        lib.libbpf_set_print.argtypes = [pointer]
        lib.libbpf_set_print(None)  # libbpf's own warnings would go to stderr; errors come back as BpfError
        _lib = lib
    return _lib


def _check(result: int, what: str) -> int:
    if result < 0:
        code = -result
        raise BpfError(code, f"{what}: {os.strerror(code)}")
    return result


class _TestRunOpts(ctypes.Structure):
    """libbpf's ``struct bpf_test_run_opts`` (libbpf >= 0.7): the frame in, the program's return value out."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


def trial_run(program_fd: int, frame: bytes) -> int:
    """Run a loaded tc program once on ``frame`` (an Ethernet frame) without attaching it
    (BPF_PROG_TEST_RUN); its return value."""
    data = ctypes.create_string_buffer(frame, len(frame))
    out = ctypes.create_string_buffer(len(frame) + 256)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(data))
    opts.data_size_in = len(frame)
    opts.data_out, opts.data_size_out = ctypes.addressof(out), len(out)
    _check(library().bpf_prog_test_run_opts(program_fd, ctypes.byref(opts)), "test run")
    return int(opts.retval)


class BpfObject:
    """One loaded BPF object file: its programs' and maps' descriptors (closed by :meth:`close`)."""

    def __init__(self, path: str) -> None:
        self._lib = library()
        handle = self._lib.bpf_object__open_file(path.encode(), None)
        if not handle:
            code = ctypes.get_errno() or errno.EINVAL
            raise BpfError(code, f"opening {path}: {os.strerror(code)}")
        self._handle: int | None = handle
        try:
            _check(self._lib.bpf_object__load(handle), f"loading {path} (verifier)")
        except BpfError:
            self.close()
            raise

    def program_fd(self, name: str) -> int:
        program = self._lib.bpf_object__find_program_by_name(self._handle, name.encode())
        if not program:
            raise BpfError(errno.ENOENT, f"no program {name!r} in the object")
        return _check(self._lib.bpf_program__fd(program), f"program {name}")

    def map_fd(self, name: str) -> int:
        return _check(self._lib.bpf_object__find_map_fd_by_name(self._handle, name.encode()), f"map {name}")

    def close(self) -> None:
        if self._handle:
            self._lib.bpf_object__close(self._handle)
            self._handle = None


def map_update(fd: int, key: bytes, value: bytes) -> None:
    lib = library()
    _check(lib.bpf_map_update_elem(fd, key, value, BPF_ANY), "map update")


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key``; False if it was not there."""
    result = library().bpf_map_delete_elem(fd, key)
    if result == -errno.ENOENT:
        return False
    _check(result, "map delete")
    return True


def map_lookup(fd: int, key: bytes, size: int) -> bytes | None:
    value = ctypes.create_string_buffer(size)
    result = library().bpf_map_lookup_elem(fd, key, value)
    if result == -errno.ENOENT:
        return None
    _check(result, "map lookup")
    return value.raw


def possible_cpus() -> int:
    return _check(library().libbpf_num_possible_cpus(), "possible CPUs")


class TcAttachment:
    """One ``bpf da`` filter on a clsact hook of one interface; :meth:`remove` takes the filter away and
    the clsact qdisc too when this attachment created it."""

    def __init__(self, ifindex: int, point: int, program_fd: int) -> None:
        self._lib = library()
        self._hook = _TcHook(ctypes.sizeof(_TcHook), ifindex, point, 0, 0)
        result = self._lib.bpf_tc_hook_create(ctypes.byref(self._hook))
        if result not in (0, -errno.EEXIST):
            _check(result, f"clsact on interface {ifindex}")
        self.created_qdisc = result == 0
        self._opts = _TcOpts(ctypes.sizeof(_TcOpts), program_fd, 0, 0, 0, 0, 0)
        try:
            _check(self._lib.bpf_tc_attach(ctypes.byref(self._hook), ctypes.byref(self._opts)), "tc attach")
        except BpfError:
            self._destroy_qdisc()
            raise
        self.handle, self.priority = self._opts.handle, self._opts.priority
        self.attached = True

    def remove(self) -> None:
        """Detach (a vanished interface took its filters along: fine); idempotent."""
        if not self.attached:
            return
        self.attached = False
        opts = _TcOpts(ctypes.sizeof(_TcOpts), 0, 0, 0, self.handle, self.priority, 0)
        result = self._lib.bpf_tc_detach(ctypes.byref(self._hook), ctypes.byref(opts))
        if result not in (0, -errno.ENOENT, -errno.ENODEV, -errno.EINVAL):
            _check(result, "tc detach")
        self._destroy_qdisc()

    def _destroy_qdisc(self) -> None:
        if self.created_qdisc:
            self.created_qdisc = False
            hook = _TcHook(ctypes.sizeof(_TcHook), self._hook.ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS, 0, 0)
            self._lib.bpf_tc_hook_destroy(ctypes.byref(hook))


class RingBuffer:
    """Poll a BPF ring buffer map; ``on_sample`` gets each record's bytes (on the polling thread)."""

    def __init__(self, map_fd: int, on_sample: Callable[[bytes], None]) -> None:
        self._lib = library()

        def sample(_ctx: int, data: int, size: int) -> int:
            on_sample(ctypes.string_at(data, size))
            return 0

        self._callback = SampleCallback(sample)  # kept alive as long as the ring buffer
        handle = self._lib.ring_buffer__new(map_fd, self._callback, None, None)
        if not handle:
            code = ctypes.get_errno() or errno.EINVAL
            raise BpfError(code, f"ring buffer: {os.strerror(code)}")
        self._handle: int | None = handle

    def poll(self, timeout_ms: int) -> None:
        if self._handle:
            self._lib.ring_buffer__poll(self._handle, timeout_ms)

    def close(self) -> None:
        if self._handle:
            self._lib.ring_buffer__free(self._handle)
            self._handle = None
