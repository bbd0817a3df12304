"""Reading a config: YAML without duplicate keys, `extends:` chains, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from selftaught.config.experiment import ExperimentConfig
from selftaught.config.limits import ConfigError
from selftaught.config.merge import merge as _merge
from selftaught.config.merge import section_model as _section_model  # noqa: F401 (importable from here as before)
from selftaught.config.phases import PHASE_SECTIONS
from selftaught.plugins import anchored

# Keys that may name user code as file.py:attribute: relative to the file that sets them.
PLUGIN_KEYS = (
    ("task", "name"),
    ("verification", "verifier"),
    ("evaluation", "task", "name"),
    ("evaluation", "verifier"),
)
# ... and folders named relative to the config file likewise (lm-eval task YAMLs).
FOLDER_KEYS = (("evaluation", "lm_eval", "include_path"),)


def _anchor_plugin_paths(data: dict, folder: Path) -> dict:
    """`data` with a relative file.py:attribute under PLUGIN_KEYS made absolute (against `folder`),
    so the config names the same file wherever it is read from (an --set overlay, the UI)."""
    for *parents, key in PLUGIN_KEYS:
        node: object = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = anchored(node[key], folder)
    for *parents, key in FOLDER_KEYS:
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(key), str) and not Path(node[key]).is_absolute():
            node[key] = str((folder / node[key]).resolve())
    return data


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"invalid experiment config {source}:"]
    for e in err.errors():
        loc = list(e["loc"])
        if loc[:1] == ["phases"] and len(loc) > 1 and isinstance(loc[1], int):  # numbered as the user counts
            loc[:2] = [f"phase {loc[1] + 1}:"]
        where = ".".join(str(p) for p in loc).replace(":.", ": ") or "(top level)"
        if e["type"] == "extra_forbidden" and where.startswith("phase ") and len(loc) == 2:
            lines.append(
                f"  - {where}: unknown key; a phase sets {', '.join(PHASE_SECTIONS)} (task, model and "
                "evaluation are the experiment's, the same in every round)"
            )
        elif e["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key (check the spelling; see pipelines/presets/demo.yaml)")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  - {where}: {e['msg']}{shown}")
    return "\n".join(lines)


def parse_config(data: dict, source: str = "<dict>") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid experiment config {source}: expected a mapping at the top, got {type(data).__name__}"
        )
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a config must not silently drop the first."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
            if first != key_node.start_mark.line + 1:
                raise ConfigError(
                    f"duplicate key {key!r} on lines {first} and {key_node.start_mark.line + 1}: "
                    "keep one (YAML would silently use the last)"
                )
        return super().construct_mapping(node, deep=deep)


# A config is a page of settings. These bounds make a hostile or broken file an error before it
# is read into memory: a 1.4 KB alias bomb expands to billions of nodes.
MAX_CONFIG_BYTES = 1 << 20
MAX_NODES = 100_000  # after aliases are expanded
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_EXTENDS = 32  # files in one extends chain


def _check_size(node, source: str) -> None:
    """ConfigError when the YAML node graph, aliases expanded, is too big, too deep or recursive."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth), each node counted once per use

    def walk(n, active: frozenset) -> tuple[int, int]:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in active:
            raise ConfigError(f"experiment config {source}: an alias refers to itself (line {n.start_mark.line + 1})")
        children = []
        if isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        elif isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        count, depth = 1, 0
        for child in children:
            c, d = walk(child, active | {id(n)})
            count, depth = count + c, max(depth, d)
            if count > MAX_NODES:
                raise ConfigError(
                    f"experiment config {source}: more than {MAX_NODES:,} values once its aliases "
                    "(*name) are expanded; a config is a page of settings"
                )
        sizes[id(n)] = (count, depth + 1)
        if depth + 1 > MAX_DEPTH:
            raise ConfigError(f"experiment config {source}: nested deeper than {MAX_DEPTH} levels")
        return sizes[id(n)]

    walk(node, frozenset())


def _load_bounded(text: str, source: str):
    """yaml.load with _UniqueKeyLoader, after the size checks on the composed node graph."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"experiment config {source} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    loader = _UniqueKeyLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the parser recurses per level before _check_size sees the depth
            raise ConfigError(f"experiment config {source}: nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None
        _check_size(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


# <root>/selftaught/config/load.py, where <root> (the repository, or site-packages) holds pipelines/
PRESETS = Path(__file__).resolve().parent.parent.parent / "pipelines" / "presets"


def _read_yaml(p: Path) -> dict:
    if not p.is_file():
        raise ConfigError(f"experiment config not found: {p}")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"experiment config {p} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        data = _load_bounded(p.read_text(encoding="utf-8"), str(p))
    except ConfigError as exc:
        raise ConfigError(
            exc.args[0] if str(exc).startswith("experiment config") else f"experiment config {p}: {exc}"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"experiment config {p} is not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(
            f"experiment config {p} is empty: write at least `extends: demo` (or the settings "
            "you mean); an empty file is more likely a mistake than the demo"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"invalid experiment config {p}: expected a mapping at the top, got {type(data).__name__}")
    return _anchor_plugin_paths(data, p.resolve().parent)


def _parent_path(child: Path, name: str) -> Path:
    """`extends: NAME`: a file beside the child (NAME, NAME.yaml), else a bundled preset."""
    for candidate in (child.parent / name, child.parent / f"{name}.yaml", PRESETS / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"experiment config {child}: extends {name!r}, which is neither a file beside it nor a preset "
        f"in {PRESETS} ({', '.join(sorted(p.stem for p in PRESETS.glob('*.yaml')))})"
    )


def resolve_yaml(path: str | Path, _seen: tuple = ()) -> dict:
    """The config file's mapping with `extends:` chains applied (parents first)."""
    p = Path(path)
    data = _read_yaml(p)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"experiment config {p}: extends must name a preset or a file, got {parent!r}")
    parent_path = _parent_path(p, parent)
    if parent_path.resolve() in _seen or parent_path.resolve() == p.resolve():
        raise ConfigError(f"experiment config {p}: extends {parent!r} makes a cycle")
    if len(_seen) + 2 > MAX_EXTENDS:
        raise ConfigError(
            f"experiment config {Path(_seen[0]) if _seen else p}: its extends chain is longer than {MAX_EXTENDS} files"
        )
    return _merge(resolve_yaml(parent_path, (*_seen, p.resolve())), data, ExperimentConfig)


def config_files(path: str | Path) -> list[Path]:
    """The file and the files it extends, child first (a cache of the config keys on all of them)."""
    out: list[Path] = []
    p = Path(path).resolve()
    while p not in out and len(out) <= MAX_EXTENDS:
        out.append(p)
        try:
            parent = _read_yaml(p).get("extends")
            p = _parent_path(p, parent).resolve() if isinstance(parent, str) and parent else p
        except (ConfigError, OSError):
            break  # load_config reports it
    return out


def load_config(path: str | Path) -> ExperimentConfig:
    return parse_config(resolve_yaml(path), str(Path(path)))


def parse_settings(settings: list[str]) -> dict:
    """`--set key.path=value` overrides as a nested mapping (values are YAML: 50, true, [a, b])."""
    out: dict = {}
    for text in settings:
        key, _, raw = text.partition("=")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {text}: the value is not valid YAML: {str(exc).splitlines()[0]}") from None
        *parents, leaf = [part.strip() for part in key.split(".")]
        if not all(parents) or not leaf:
            raise ConfigError(f"--set {text}: expected key.path=value, e.g. training.max_steps=50")
        if not parents and leaf == "extends":
            raise ConfigError(
                f"--set {text}: extends is the config's parent, not a setting (it would silently "
                "swap the experiment for another); pass that file as --config instead"
            )
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: {part} is already set to a value by another --set")
        node[leaf] = value
    return out


def with_overrides(path: str | Path, settings: list[str], folder: str | Path) -> Path:
    """A config file in `folder` that extends `path` with the --set `settings`, validated (a
    bad key or value is a ConfigError naming it); the same settings give the same file."""
    import hashlib

    from selftaught.files import write_text_atomic

    load_config(path)  # the file's own errors first, named as the file's
    over = _anchor_plugin_paths(parse_settings(settings), Path.cwd())  # a path typed in the shell
    text = f"# selftaught --set {' '.join(settings)}\n" + yaml.safe_dump(
        {"extends": str(Path(path).resolve()), **over}, sort_keys=False
    )
    out = Path(folder) / f"{Path(path).stem}.set-{hashlib.sha256(text.encode()).hexdigest()[:10]}.yaml"
    parse_config(resolve_yaml_text(text, Path(path).resolve()), f"{path} with --set {' '.join(settings)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(text, out)
    return out


def resolve_yaml_text(text: str, parent: Path) -> dict:
    """A --set overlay's mapping on its parent file's (what resolve_yaml gives once written)."""
    over = _load_bounded(text, "--set overrides")
    over.pop("extends", None)
    return _merge(resolve_yaml(parent), over, ExperimentConfig)
