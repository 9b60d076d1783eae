"""GPUs on the local platform: which devices a session gets, and how a container gets them.

The platform's GPUs are those its `capacity.gpus` declares; `local.gpus.ids` names them as the
devices are named (`0`, `1`, or `GPU-<uuid>`; by default `0` to N-1). The broker books a count
of GPUs, not which ones, so the adapter picks the devices when the work starts: the first ids
that no live session holds (`GpuLedger`, a small JSON file beside the sessions' folders,
changed under an exclusive lock and flushed to disk, so that two sessions, even of two voexec
processes sharing the folder, never get the same device; a ledger that is missing or cannot be
read is rebuilt from the sessions' `state/gpus`). A session keeps its ids in `state/gpus` and
holds them while its work's runner lives; its release gives them back.

A container gets its GPUs from the engine: `--device <kind>=<id>` for each id when the platform
uses CDI (`local.gpus.cdi`, by default `nvidia.com/gpu`; a CDI spec for that kind naming every
id must be in one of `local.gpus.cdi_spec_dirs`), else `--device <file>` for each device file
`local.gpus.devices` lists for its ids. A platform that can do neither answers NO at offer time
to container requests with GPUs (`container_refusals`), saying what is missing. Programs that
run as processes see the machine's devices; they get `CUDA_VISIBLE_DEVICES` set to their ids.

Reads the CDI spec folders, the device files' existence and the ledger; imports the standard
library, PyYAML (CDI specs are YAML or JSON) and `core`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from core.errors import ConfigError
from core.settings import PlatformSettings

__all__ = [
    "GPU_STATE",
    "GpuLedger",
    "GpuPassing",
    "gpu_passing",
]

GPU_STATE: Final = "gpus"
"""In a session's `state/`: the ids of the GPUs it got, one a line."""
LEDGER: Final = "gpus.json"
"""Beside the sessions' folders: which session holds each GPU id."""
_SPEC_SUFFIXES: Final = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class GpuPassing:
    """A platform's GPUs and how its containers get them."""

    ids: tuple[str, ...]
    """Every GPU id of the platform, in the order they are handed out."""
    models: tuple[str, ...] = ()
    """The GPU models `capacity.gpus` declares."""
    cdi: str = ""
    """The CDI device kind (`nvidia.com/gpu`); empty: `devices`."""
    cdi_spec_dirs: tuple[str, ...] = ()
    devices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """GPU id -> its device files, without CDI."""
    setting: str = "local"
    """Where the settings live, to name them in refusals."""

    def engine_options(self, ids: Sequence[str]) -> list[str]:
        """The engine's `--device` values giving a container the GPUs `ids`.

        One CDI device name per id (`nvidia.com/gpu=0`), or each device file of the ids once,
        in order.
        """
        if self.cdi:
            return [f"{self.cdi}={gpu}" for gpu in ids]
        files = dict(self.devices)
        return list(dict.fromkeys(path for gpu in ids for path in files.get(gpu, ())))

    def container_refusals(self) -> list[str]:
        """Why containers on this platform cannot get GPUs; empty when they can."""
        if len(self.models) > 1:
            return [
                "hands GPUs to containers of one GPU model only, and capacity.gpus lists "
                + ", ".join(self.models)
            ]
        if self.cdi:
            return self._cdi_refusals()
        files = dict(self.devices)
        without = [gpu for gpu in self.ids if not files.get(gpu)]
        if without:
            return [
                "cannot give GPUs to containers: no CDI device kind is configured "
                f"({self.setting}.gpus.cdi is empty) and {self.setting}.gpus.devices lists no "
                f"device files for GPU {', '.join(without)}"
            ]
        missing = [path for _, paths in self.devices for path in paths if not Path(path).exists()]
        if missing:
            return [
                f"cannot give GPUs to containers: the device files {', '.join(missing)} "
                f"({self.setting}.gpus.devices) do not exist on this machine"
            ]
        return []

    def _cdi_refusals(self) -> list[str]:
        named = cdi_devices(self.cdi, self.cdi_spec_dirs)
        where = ", ".join(self.cdi_spec_dirs) or "(no folder)"
        if named is None:
            return [
                f"cannot give GPUs to containers: no CDI spec for {self.cdi} in {where} "
                f"({self.setting}.gpus.cdi_spec_dirs; make one with `nvidia-ctk cdi generate "
                f"--output=/etc/cdi/nvidia.yaml`, or list device files in "
                f'{self.setting}.gpus.devices with gpus.cdi set to "")'
            ]
        unknown = [gpu for gpu in self.ids if gpu not in named]
        if unknown:
            return [
                f"cannot give GPUs to containers: the CDI spec for {self.cdi} in {where} names "
                f"no device {', '.join(unknown)} ({self.setting}.gpus.ids); it names "
                + (", ".join(sorted(named)) or "none")
            ]
        return []


def cdi_devices(kind: str, folders: Sequence[str]) -> set[str] | None:
    """The device names the CDI specs for `kind` in `folders` declare; None: no spec for it.

    Unreadable files and other kinds are passed over, as the engines do.
    """
    found: set[str] | None = None
    for folder in folders:
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:
            continue
        for path in entries:
            if path.suffix not in _SPEC_SUFFIXES or not path.is_file():
                continue
            try:
                spec = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if not isinstance(spec, dict) or spec.get("kind") != kind:
                continue
            found = found if found is not None else set()
            for device in spec.get("devices") or []:
                if isinstance(device, dict) and device.get("name") is not None:
                    found.add(str(device["name"]))
    return found


def gpu_passing(settings: PlatformSettings, setting: str) -> GpuPassing | None:
    """The platform's GPUs as its settings declare them; None when it declares none.

    Raises:
        ConfigError: `gpus.ids` does not name as many GPUs as `capacity.gpus` declares, names
            one twice, or `gpus.devices` names a GPU that is not one of them.
    """
    count = sum(gpu.count for gpu in settings.capacity.gpus)
    if not count:
        return None
    local = settings.local.gpus
    ids = tuple(local.ids) or tuple(str(index) for index in range(count))
    if len(ids) != count:
        raise ConfigError(
            f"setting {setting}.gpus.ids: names {len(ids)} GPU(s), but capacity.gpus declares "
            f"{count}"
        )
    if len(set(ids)) != len(ids):
        raise ConfigError(f"setting {setting}.gpus.ids: names a GPU twice: {list(ids)}")
    strangers = sorted(set(local.devices) - set(ids))
    if strangers:
        raise ConfigError(
            f"setting {setting}.gpus.devices: {', '.join(strangers)} are not GPU ids of this "
            f"platform ({', '.join(ids)})"
        )
    return GpuPassing(
        ids=ids,
        models=tuple(gpu.model for gpu in settings.capacity.gpus),
        cdi=local.cdi.strip(),
        cdi_spec_dirs=tuple(local.cdi_spec_dirs),
        devices=tuple((gpu, tuple(local.devices.get(gpu, ()))) for gpu in ids),
        setting=setting,
    )


class GpuLedger:
    """Which session holds each GPU of a platform: a JSON file changed under a lock."""

    def __init__(self, folder: Path, ids: Sequence[str]) -> None:
        self._path = folder / LEDGER
        self._lock = folder / (LEDGER + ".lock")
        self._ids = tuple(ids)

    @contextlib.contextmanager
    def held(self) -> Iterator[dict[str, str]]:
        """The ledger, locked against every other writer; what the block leaves is saved."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            holders = self._read()
            yield holders
            self._write(holders)
        finally:
            os.close(descriptor)  # closing the descriptor releases the lock

    def _write(self, holders: dict[str, str]) -> None:
        """Replace the ledger with `holders`, on disk before the lock is let go (fsync)."""
        temporary = self._path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(holders, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self._path)
        folder = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)  # the rename itself
        finally:
            os.close(folder)

    def _read(self) -> dict[str, str]:
        """The ledger; rebuilt from the sessions' folders when it is missing or unreadable.

        A GPU is never taken for free because the file was lost or damaged (a crash, a full
        disk): what each session's `state/gpus` says it got stands in for it.
        """
        try:
            found = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self._rebuilt()
        if not isinstance(found, dict):
            return self._rebuilt()
        return {str(gpu): str(session) for gpu, session in found.items() if gpu in self._ids}

    def _rebuilt(self) -> dict[str, str]:
        """Which session holds each GPU, from every session's `state/gpus`.

        A GPU goes to another session only once its holder's work has ended (`take`), so where
        two sessions name the same id, the one that got it last (the newer file) holds it.
        Sessions whose work has ended are kept: `take` and `holders_of` pass over them.
        """
        claims: list[tuple[float, str, str]] = []
        for state in self._path.parent.glob(f"*/state/{GPU_STATE}"):
            try:
                when = state.stat().st_mtime
                ids = state.read_text(encoding="utf-8").split()
            except (OSError, UnicodeDecodeError):
                continue
            claims += [(when, state.parent.parent.name, gpu) for gpu in ids if gpu in self._ids]
        return {gpu: session for _, session, gpu in sorted(claims)}

    def take(
        self, holders: dict[str, str], session: str, count: int, live: Callable[[str], bool]
    ) -> tuple[str, ...] | None:
        """`count` GPU ids for `session` in the locked ledger `holders`; None when too few are free.

        The ids the session already holds come first (asking again changes nothing); a GPU is
        free when no session holds it or its holder's work no longer lives (`live`).
        """
        mine = [gpu for gpu in self._ids if holders.get(gpu) == session]
        free = [
            gpu
            for gpu in self._ids
            if gpu not in holders or (holders[gpu] != session and not live(holders[gpu]))
        ]
        chosen = (mine + free)[:count]
        if len(chosen) < count:
            return None
        for gpu in chosen:
            holders[gpu] = session
        return tuple(chosen)

    def holders_of(self, holders: dict[str, str], live: Callable[[str], bool]) -> list[str]:
        """The sessions whose live work holds GPUs, for a reason that names them."""
        return sorted({session for session in holders.values() if live(session)})

    def give_back(self, session: str) -> None:
        """Free every GPU `session` holds."""
        with self.held() as holders:
            for gpu in [gpu for gpu, holder in holders.items() if holder == session]:
                del holders[gpu]
