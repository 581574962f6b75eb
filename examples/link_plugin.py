"""Registers this clone with FiftyOne: a link in FiftyOne's plugins directory.

FiftyOne loads every folder holding a ``fiftyone.yml`` under
``fo.config.plugins_dir`` (``FIFTYONE_PLUGINS_DIR``; by default
``~/fiftyone/__plugins__``). A symbolic link to this clone there makes the
App load Stoplight from the clone, edits included, where
``fiftyone plugins download`` would install a copy.

    python examples/link_plugin.py            # link (idempotent); says where and how to remove it
    python examples/link_plugin.py --check    # only say whether FiftyOne loads this clone (exit 1 if not)

Nothing is overwritten: when FiftyOne already has a plugin of this name
from somewhere else (a downloaded copy, another clone), it is left alone
and the script says how to switch; a path taken by anything else gets a
numbered name next to it, as ``fiftyone plugins download`` does.
``bash .ci/setup`` and ``examples/quickstart.py`` run this.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: the statuses of :class:`Registration`
LINKED, ALREADY, OTHER = "linked", "already", "other"


@dataclasses.dataclass(frozen=True)
class Registration:
    """Where FiftyOne finds the plugin.

    Attributes:
        status: ``linked`` (a link was made now), ``already`` (FiftyOne
            already loads this clone) or ``other`` (FiftyOne loads another
            copy of the plugin; nothing was changed)
        name: the plugin's name (``fiftyone.yml``)
        path: the plugin folder FiftyOne loads (for ``linked``: the link)
        plugins_dir: FiftyOne's plugins directory
    """

    status: str
    name: str
    path: str
    plugins_dir: str

    @property
    def removal(self) -> str | None:
        """A shell command that unregisters this clone (removes the link,
        never the clone), or None when the plugin folder is not a link."""
        if self.status == OTHER or not os.path.islink(self.path):
            return None
        return f"rm {shlex.quote(self.path)}"

    def describe(self) -> list[str]:
        """What happened, in lines to print."""
        if self.status == OTHER:
            return [
                f"FiftyOne already loads a plugin named {self.name} from {self.path} (not this clone, "
                f"{REPO}); left as it is.",
                f"To use this clone instead: fiftyone plugins delete {self.name}  (or move {self.path} away), "
                "then run this again.",
            ]
        where = "linked into" if self.status == LINKED else "already registered in"
        lines = [f"Plugin {self.name} {where} FiftyOne's plugins directory: {self.path} -> {REPO}"]
        if self.removal:
            lines.append(f"To remove it: {self.removal}   (removes the link only; the clone stays)")
        else:
            lines.append(f"(this clone lies inside FiftyOne's plugins directory {self.plugins_dir})")
        return lines


def plugin_name() -> str:
    """The plugin's name, from ``fiftyone.yml``."""
    import yaml

    return yaml.safe_load((REPO / "fiftyone.yml").read_text())["name"]


def _copies(name: str) -> list[str]:
    """Folders under the plugins directory that hold a plugin named ``name``
    (disabled ones included), the one FiftyOne loads first, then the
    duplicates it ignores (shadowed)."""
    import fiftyone.plugins as fop

    return [p.directory for p in fop.list_plugins(enabled="all", shadowed="all") if p.name == name]


def _is_this_clone(path: str) -> bool:
    return Path(path).resolve() == REPO


def find() -> Registration | None:
    """Where FiftyOne finds this plugin, without changing anything; None when
    it finds no plugin of this name."""
    import fiftyone as fo

    plugins_dir = fo.config.plugins_dir
    name = plugin_name()
    copies = _copies(name)
    if not copies:
        return None
    # a link to this clone that another copy shadows does not count
    return Registration(ALREADY if _is_this_clone(copies[0]) else OTHER, name, copies[0], plugins_dir)


def link() -> Registration:
    """Links this clone into FiftyOne's plugins directory
    (``fo.config.plugins_dir``) unless FiftyOne already finds a plugin of
    this name there.

    Returns:
        a :class:`Registration`

    Raises:
        RuntimeError: when FiftyOne does not find the plugin through the new link
    """
    import fiftyone as fo

    found = find()
    if found is not None:
        return found
    plugins_dir = fo.config.plugins_dir
    name = plugin_name()
    # FiftyOne's own layout for a downloaded plugin: <plugins_dir>/@org/name
    base = Path(plugins_dir, *name.split("/"))
    path, i = base, 2
    while os.path.lexists(path):  # something else lives there: never replace it
        path, i = base.with_name(f"{base.name}{i}"), i + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(REPO, target_is_directory=True)
    if not any(_is_this_clone(c) for c in _copies(name)):
        path.unlink()
        raise RuntimeError(f"FiftyOne did not find the plugin through the link {path}; removed it again")
    return Registration(LINKED, name, str(path), plugins_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 unless FiftyOne loads this clone")
    args = parser.parse_args(argv)
    reg = find() if args.check else link()
    if reg is None:
        import fiftyone as fo

        print(f"FiftyOne finds no plugin {plugin_name()} in {fo.config.plugins_dir}; "
              f"register this clone with: python {shlex.quote(str(Path(__file__).resolve()))}")
        return 1
    print("\n".join(reg.describe()))
    return 0 if reg.status != OTHER or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
