"""``hiker dev --bot``: where the bot's code is, and when one of its files was saved.

Polls modification times (no file-system notification library): a bot is a handful of files,
and a poll every half second costs nothing next to the services it restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path

from hiker.core.settings import ConfigError

# What a bot is made of: its code, the rules file its ``Bot(rules=...)`` names, data it loads.
WATCHED_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".json", ".toml", ".txt"})

Snapshot = Mapping[Path, int]


@dataclass(frozen=True)
class BotSource:
    """The folder holding a bot's module: the module's own folder when it is a plain module
    (not its subfolders: a bot beside a checkout must not watch the checkout), its whole
    top-level package when it is in one (handlers spread over subpackages)."""

    module_file: Path
    folder: Path
    recursive: bool


def locate(spec: str, search_path: Sequence[str]) -> BotSource:
    """The files of ``module:attribute`` as an import from ``search_path`` would find them,
    without running the bot's code (its import happens in conversation, not here)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--bot must look like 'module:bot', not {spec!r}")
    path = list(search_path)
    found = top = None
    for part in module_name.split("."):
        found = PathFinder.find_spec(part, path)
        if found is None or found.origin is None:
            raise ConfigError(
                f"--bot {spec!r}: no module {module_name!r} in the current directory "
                "or on the Python path"
            )
        path = list(found.submodule_search_locations or [])
        top = top or found
    if found is None or found.origin is None or top is None:  # an empty name: refused above
        raise ConfigError(f"--bot {spec!r} names no module")
    if top.submodule_search_locations:
        return BotSource(Path(found.origin), Path(top.submodule_search_locations[0]), True)
    return BotSource(Path(found.origin), Path(found.origin).parent, False)


def snapshot(source: BotSource) -> dict[Path, int]:
    """Each watched file of the bot with its modification time in nanoseconds."""
    candidates = source.folder.rglob("*") if source.recursive else source.folder.glob("*")
    files: dict[Path, int] = {}
    for path in candidates:
        relative = path.relative_to(source.folder).parts
        if path.suffix not in WATCHED_SUFFIXES or any(
            part.startswith(".") or part == "__pycache__" for part in relative
        ):
            continue
        try:
            files[path] = path.stat().st_mtime_ns
        except OSError:  # deleted between listing and stat: the next poll sees it gone
            continue
    return files


def changed_files(before: Snapshot, after: Snapshot) -> list[Path]:
    """Files added, removed or modified between two snapshots, sorted."""
    paths = before.keys() | after.keys()
    return sorted(path for path in paths if before.get(path) != after.get(path))


async def changes(source: BotSource, poll_seconds: float = 0.5) -> AsyncGenerator[list[Path]]:
    """Each save of the bot's files, as the files that changed, once they stopped changing.

    Debounced: an editor writes a file in several steps, and a save-all touches several files;
    one restart follows once a poll sees nothing new since the one before.
    """
    settled = await asyncio.to_thread(snapshot, source)
    while True:
        await asyncio.sleep(poll_seconds)
        current = await asyncio.to_thread(snapshot, source)
        if current == settled:
            continue
        while True:
            await asyncio.sleep(poll_seconds)
            latest = await asyncio.to_thread(snapshot, source)
            if latest == current:
                break
            current = latest
        changed = changed_files(settled, current)
        settled = current
        if changed:
            yield changed


async def next_save(saves: AsyncGenerator[list[Path]]) -> list[Path]:
    """The next change ``changes`` reports, as a coroutine (a task can wait on it)."""
    return await anext(saves)
