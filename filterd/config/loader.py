"""Load a Sysmon XML configuration file into a validated, immutable Config.

Owns the whole upstream loading pipeline (upstream `SysmonCommon:xml.cpp`) so that every
real config is accepted or rejected exactly where upstream accepts or rejects it:

1. bytes -> text: UTF-8 / UTF-16 LE / UTF-16 BE, with or without BOM, 8-bit encodings from the XML
   declaration (ISO-8859-1 ...); the declaration is then stripped (line numbers preserved);
2. a hardened lxml parse: no entity expansion, no DTD or network loading, no huge trees, plus our own
   limits on file size, nesting depth and value length; entity references are refused;
3. root `<Sysmon>`, `schemaversion` (>= 4.00; higher unknown versions accepted), top-level options
   (HashAlgorithms, FieldSizes, DnsLookup; Windows-only options rejected as SysmonForLinux does);
4. `<EventFiltering>`: event elements at any depth, RuleGroup / onmatch / legacy `default`, `<Rule>`
   aggregates, field filters and their conditions.

Upstream prints some problems and keeps going (unknown field, missing onmatch): those end up in
`Config.warnings`; everything that upstream rejects raises ConfigError with file and line. Nothing
is printed here; `describe_load` gives upstream's console lines for the `sysmon` CLI.
"""

from __future__ import annotations

import codecs
import math
import os
import re
from importlib import resources
from types import MappingProxyType

from lxml import etree

from filterd import schema
from filterd.config.errors import (
    ConfigEncodingError,
    ConfigError,
    ConfigLimitError,
    ConfigReadError,
    ConfigStructureError,
    ConfigSyntaxError,
    OptionError,
    RuleError,
    SchemaVersionError,
    UnsupportedOptionError,
)
from filterd.config.model import AND, EXCLUDE, INCLUDE, OR, Config, EventRule, Filter, Note, RuleAggregate
from filterd.rules.conditions import UNKNOWN_CONDITION_HELP, lookup_condition

__all__ = ["ConfigError", "Config", "load_config", "load_config_bytes", "default_config", "describe_load"]

# Safety limits (beyond libxml2's own, huge_tree=False). The largest real config is ~1 MB.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUE_CHARS = 65536
MAX_RULE_NAME = 255  # upstream: "Rule name is larger than 255 characters"

MIN_SCHEMA = (4, 0)
OR_DEFAULT_UP_TO = (4, 10)  # schemaversion <= 4.1 combines event elements with OR by default

WINDOWS_ONLY_OPTIONS = ("CheckRevocation", "ArchiveDirectory", "DriverName", "CaptureClipboard")
NO_EFFECT_OPTIONS = ("ProcessAccessConfig", "PipeMonitoringConfig")  # rule options, forceconfig
INTERNAL_OPTIONS = ("ServiceArchiveDirectory", "InternalRepresentation", "OutputRules", "TraceEvents")

HASH_NAMES = {
    "sha1": "SHA1",
    "sha-1": "SHA1",
    "md5": "MD5",
    "md-5": "MD5",
    "sha256": "SHA256",
    "sha-256": "SHA256",
    "imphash": "IMPHASH",
    "imp-hash": "IMPHASH",
}
HASH_ORDER = ("SHA1", "MD5", "SHA256", "IMPHASH")
DEFAULT_HASHES = ("SHA256",)

ALL_FIELD_NAMES = frozenset(f for e in schema.EVENT_TYPES for f in e.fields)
# Unique rule tags in manifest order (the order upstream compiles them in).
RULE_TAGS: tuple[str, ...] = tuple(dict.fromkeys(e.rule_tag for e in schema.EVENT_TYPES if e.rule_tag))
TAG_FIELDS: dict[str, frozenset[str]] = {
    tag: frozenset(f for e in evs for f in e.fields) for tag, evs in schema.BY_RULE_TAG.items()
}

_8BIT_ENCODINGS = (
    "utf-8",
    "utf8",
    "iso-8859-",
    "iso8859-",
    "latin",
    "us-ascii",
    "ascii",
    "windows-125",
    "cp125",
)
_DECL_RE = re.compile(r"\A(\s*)<\?xml\s.*?\?>", re.S)
_DECL_ENC_RE = re.compile(rb"\A\s*<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']", re.S)
_SYNTAX_HINTS = {
    "xmlParseEntityRef": "an unescaped '&' (write &amp;)",
    "StartTag: invalid element name": "an unescaped '<' (write &lt;)",
    "Opening and ending tag mismatch": "an element is not closed",
}
# std::stod: leading whitespace, then the longest decimal / inf / nan prefix.
_STOD_RE = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.I)


def load_config(path: str | os.PathLike[str], *, reject_windows_options: bool = True) -> Config:
    """Read and validate a config file; raises ConfigError (also when the file cannot be read).

    `reject_windows_options=False` accepts CheckRevocation & co. with a warning instead of refusing
    the file as SysmonForLinux does (useful for benchmarks on Windows configs, never for the daemon).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigReadError(name, None, f"cannot read configuration file: {e.strerror or e}") from None
    return load_config_bytes(data, name, reject_windows_options=reject_windows_options)


def load_config_bytes(data: bytes, name: str = "<config>", *, reject_windows_options: bool = True) -> Config:
    """Validate a config given as bytes; `name` is used in messages and as Config.source."""
    return _Loader(name, reject_windows_options).load(data)


def default_config() -> Config:
    """The built-in default (filterd/default-config.xml): log every ProcessCreate and ProcessTerminate.

    Its source is "Defaults", the name upstream reports for a configuration without a file.
    """
    data = resources.files("filterd").joinpath("default-config.xml").read_bytes()
    return load_config_bytes(data, "Defaults")


def describe_load(config: Config) -> list[str]:
    """Upstream's console lines for a successful load (for the `sysmon` CLI to print)."""
    lines = [f"Loading configuration file with schema version {config.schema_version}"]
    if config.schema_version != schema.SCHEMA_VERSION:
        lines.append(f"Sysmon schema version: {schema.SCHEMA_VERSION}")
    lines.extend(config.warnings)
    lines.append("Configuration file validated.")
    return lines


def parse_schema_version(text: str | None) -> tuple[int, int] | None:
    """std::stod + "%.2f" + major.minor as upstream; None when invalid (missing, non-numeric, <= 0.x)."""
    if text is None:
        return None
    m = _STOD_RE.match(text)
    if not m:
        return None
    try:
        value = float(m.group(1))
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    major_s, _, minor_s = f"{value:.2f}".partition(".")
    major, minor = int(major_s), int(minor_s)
    if major <= 0:
        return None
    return major, minor


def format_version(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]:02d}"


class _Loader:
    """One load: collects warnings/notes, raises ConfigError on the first rejection."""

    def __init__(self, name: str, reject_windows_options: bool) -> None:
        self.name = name
        self.reject_windows_options = reject_windows_options
        self.warnings: list[str] = []
        self.notes: list[Note] = []

    # --- errors and notes -------------------------------------------------------------------------

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(message)
        self.notes.append(Note(line, message, "warning"))

    def ignored(self, line: int | None, message: str) -> None:
        self.notes.append(Note(line, message, "ignored"))

    # --- pipeline -----------------------------------------------------------------------------------

    def load(self, data: bytes) -> Config:
        if len(data) > MAX_FILE_BYTES:
            raise ConfigLimitError(
                self.name, None, f"configuration file is larger than {MAX_FILE_BYTES} bytes"
            )
        if not data.strip():
            raise ConfigSyntaxError(self.name, None, "configuration file is empty")
        text = self.decode(data)
        root = self.parse(text)
        self.check_tree(root)
        if root.tag != "Sysmon":
            raise ConfigStructureError(
                self.name, root.sourceline, f"root element is <{root.tag}>, expected <Sysmon>"
            )
        version = self.schema_version(root)
        opts = self.options(root)
        rules = self.event_filtering(root, version)
        return Config(
            source=self.name,
            schema_version=format_version(version),
            hash_algorithms=opts["hash_algorithms"],
            field_sizes=MappingProxyType(opts["field_sizes"]),
            warnings=tuple(self.warnings),
            rules=rules,
            field_sizes_text=opts["field_sizes_text"],
            hash_algorithms_text=opts["hash_algorithms_text"],
            dns_lookup=opts["dns_lookup"],
            options=MappingProxyType(opts["raw"]),
            notes=tuple(self.notes),
        )

    def decode(self, data: bytes) -> str:
        """Bytes -> text following upstream's sniffing; the XML declaration is blanked out."""
        if data.startswith(codecs.BOM_UTF8):
            enc, body = "utf-8", data[3:]  # a BOM wins over a contradicting declaration
        elif data.startswith(codecs.BOM_UTF16_LE):
            enc, body = "utf-16-le", data[2:]
        elif data.startswith(codecs.BOM_UTF16_BE):
            enc, body = "utf-16-be", data[2:]
        elif len(data) >= 2 and data[1] == 0 and data[0] != 0:
            enc, body = "utf-16-le", data  # no BOM, "<\0" or "\r\0": UTF-16LE (upstream's 2nd-byte test)
        elif len(data) >= 2 and data[0] == 0 and data[1] != 0:
            enc, body = "utf-16-be", data
        else:
            enc, body = self.declared_8bit_encoding(data), data
        try:
            text = body.decode(enc)
        except UnicodeDecodeError as e:
            line = body[: e.start].decode(enc, "replace").count("\n") + 1
            raise ConfigEncodingError(
                self.name, line, f"invalid {enc} byte sequence at byte offset {e.start}"
            ) from None
        # Upstream strips the declaration before parsing; keep its newlines so lines still match.
        return _DECL_RE.sub(lambda m: m.group(1) + "\n" * m.group(0).count("\n", len(m.group(1))), text, 1)

    def declared_8bit_encoding(self, data: bytes) -> str:
        m = _DECL_ENC_RE.match(data[:1024])
        if not m:
            return "utf-8"
        declared = m.group(1).decode("ascii", "replace").strip().lower()
        if declared.startswith(("utf-16", "utf16", "ucs-2", "utf-32")):
            return "utf-8"  # 8-bit content labelled 16-bit: upstream's sniffing decides 8-bit
        if not declared.startswith(_8BIT_ENCODINGS):
            raise ConfigEncodingError(
                self.name, 1, f"unsupported encoding {declared!r} in the XML declaration"
            )
        try:
            return codecs.lookup(declared).name
        except LookupError:
            raise ConfigEncodingError(
                self.name, 1, f"unsupported encoding {declared!r} in the XML declaration"
            ) from None

    def parse(self, text: str) -> etree._Element:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            dtd_validation=False,
            attribute_defaults=False,
            collect_ids=False,
        )
        try:
            root = etree.fromstring(text, parser)
        except etree.XMLSyntaxError as e:
            log = parser.error_log  # this parse only (e.error_log also holds earlier parses' errors)
            entry = log[0] if len(log) else None  # the first error is the root cause
            line = entry.line if entry is not None else e.lineno
            msg = (entry.message if entry is not None else str(e.msg)).strip()
            if entry is not None and entry.column:
                msg += f" (column {entry.column})"
            hint = next((h for k, h in _SYNTAX_HINTS.items() if k in msg), None)
            if hint:
                msg += f"; {hint}"
            raise ConfigSyntaxError(self.name, line or None, f"malformed XML: {msg}") from None
        except ValueError as e:  # e.g. a second XML declaration inside a unicode string
            raise ConfigSyntaxError(self.name, None, f"malformed XML: {e}") from None
        if root is None:
            raise ConfigSyntaxError(self.name, None, "malformed XML: no root element")
        dtd = root.getroottree().docinfo.internalDTD
        if dtd is not None and any(True for _ in dtd.iterentities()):
            raise ConfigSyntaxError(self.name, 1, "DOCTYPE entity declarations are not allowed")
        return root

    def check_tree(self, root: etree._Element) -> None:
        """Depth, value length and entity checks in one pass."""
        depth = 0
        for event, el in etree.iterwalk(root, events=("start", "end")):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigLimitError(
                    self.name, el.sourceline, f"elements nested deeper than {MAX_DEPTH} levels"
                )
            tag = el.tag
            if tag is etree.Entity:
                raise ConfigSyntaxError(
                    self.name, el.sourceline, f"entity reference {el.text} is not allowed"
                )
            if not isinstance(tag, str):
                continue
            if el.text is not None and len(el.text) > MAX_VALUE_CHARS:
                raise ConfigLimitError(
                    self.name,
                    el.sourceline,
                    f"<{_short(tag)}> value is longer than {MAX_VALUE_CHARS} characters",
                )
            for k, v in el.attrib.items():
                if len(v) > MAX_VALUE_CHARS:
                    raise ConfigLimitError(
                        self.name,
                        el.sourceline,
                        f"<{_short(tag)} {_short(k)}> value is longer than {MAX_VALUE_CHARS} characters",
                    )

    def schema_version(self, root: etree._Element) -> tuple[int, int]:
        raw = root.get("schemaversion")
        v = parse_schema_version(raw)
        if v is None:
            shown = "" if raw is None else raw
            what = "missing schemaversion attribute" if raw is None else f"invalid schemaversion {raw!r}"
            raise SchemaVersionError(
                self.name,
                root.sourceline,
                f"<Sysmon>: {what}",
                upstream=f"Error: Invalid schema version number ({shown})  for configuration: {self.name}",
            )
        if v < MIN_SCHEMA:
            raise SchemaVersionError(
                self.name,
                root.sourceline,
                f"<Sysmon>: unsupported schemaversion {format_version(v)} (lowest supported is 4.00, "
                f"current Sysmon schema version {schema.SCHEMA_VERSION})",
                upstream=f"Error: Incorrect or unsupported schema version {format_version(v)}. "
                f"Current Sysmon schema version {schema.SCHEMA_VERSION}",
            )
        return v

    # --- top-level options ----------------------------------------------------------------------

    def options(self, root: etree._Element) -> dict:
        out: dict = {
            "hash_algorithms": DEFAULT_HASHES,
            "hash_algorithms_text": None,
            "field_sizes": {},
            "field_sizes_text": None,
            "dns_lookup": None,
            "raw": {},
        }
        for el in root:
            tag = el.tag
            if not isinstance(tag, str) or tag == "EventFiltering":
                continue
            text = el.text or ""
            line = el.sourceline
            if tag in WINDOWS_ONLY_OPTIONS:
                if self.reject_windows_options:
                    raise UnsupportedOptionError(
                        self.name,
                        line,
                        f"<{tag}>: Option not implemented on Linux.",
                        upstream="Option not implemented on Linux.",
                    )
                self.warn(line, f"Option not implemented on Linux: {tag} (ignored)")
                continue
            if tag == "HashAlgorithms":
                out["hash_algorithms"] = self.hash_algorithms(text, line)
                out["hash_algorithms_text"] = text
            elif tag == "FieldSizes":
                out["field_sizes"] = self.field_sizes(text, line)
                out["field_sizes_text"] = text
            elif tag == "DnsLookup":
                out["dns_lookup"] = text
                self.ignored(line, "<DnsLookup> has no effect on Linux (host and port names are always '-')")
            elif tag in NO_EFFECT_OPTIONS or tag in INTERNAL_OPTIONS:
                self.ignored(line, f"<{tag}> has no effect here")
            else:
                # pugixml era: an unknown option element stops option processing (`break`).
                self.ignored(line, f"unknown option <{_short(tag)}>: it and every later option are ignored")
                break
            out["raw"][tag] = text
        return out

    def hash_algorithms(self, text: str, line: int | None) -> tuple[str, ...]:
        chosen: set[str] = set()
        for tok in text.split(","):
            tok = tok.strip()
            if not tok:
                continue
            low = tok.lower()
            if low in ("*", "all"):
                chosen.update(HASH_ORDER)
            elif low in HASH_NAMES:
                chosen.add(HASH_NAMES[low])
            else:
                raise OptionError(
                    self.name,
                    line,
                    f"<HashAlgorithms>: Invalid hashing algorithm: {tok}",
                    upstream=f"Invalid hashing algorithm: {tok}",
                )
        if not chosen:
            return DEFAULT_HASHES
        return tuple(h for h in HASH_ORDER if h in chosen)

    def field_sizes(self, text: str, line: int | None) -> dict[str, int]:
        for c in text:
            if not (c.isascii() and (c.isalnum() or c in ",:")):
                msg = f"FieldSizes option ('{text}') has invalid character: '{c}'."
                raise OptionError(self.name, line, f"<FieldSizes>: {_printable(msg)}", upstream=msg)
        sizes: dict[str, int] = {}
        for item in text.split(","):
            if ":" not in item:
                continue  # upstream ignores items without a size
            fname, _, num = item.partition(":")
            if fname not in ALL_FIELD_NAMES:
                msg = f"FieldSizes field '{fname}' is invalid."
                raise OptionError(self.name, line, f"<FieldSizes>: {msg}", upstream=msg)
            digits = re.match(r"\d*", num).group(0)
            n = int(digits) if digits else 0
            if n <= 0:
                msg = f"FieldSizes field '{fname}' has max size of {n}."
                raise OptionError(self.name, line, f"<FieldSizes>: {msg}", upstream=msg)
            sizes[fname] = n
        return sizes

    # --- EventFiltering ------------------------------------------------------------------------

    def event_filtering(self, root: etree._Element, version: tuple[int, int]) -> tuple[EventRule, ...]:
        filtering = [el for el in root if el.tag == "EventFiltering"]
        default_relation = OR if version <= OR_DEFAULT_UP_TO else AND
        positions: dict[etree._Element, int] = {}
        for ef in filtering:
            for el in ef.iter():
                if isinstance(el.tag, str) and el.tag in TAG_FIELDS:
                    positions.setdefault(el, len(positions))
        self.note_unknown_elements(filtering)
        rules: list[EventRule] = []
        for tag in RULE_TAGS:
            skipping_after: int | None = None
            for ef in filtering:
                for el in ef.iter(tag):
                    if el is ef:
                        continue
                    if skipping_after is not None:
                        self.ignored(
                            el.sourceline,
                            f"<{tag}> skipped: upstream stops reading {tag} elements after the incorrect "
                            f"field at line {skipping_after}",
                        )
                        continue
                    rule, bad_line = self.event_element(el, tag, default_relation, positions[el])
                    if bad_line is not None:
                        skipping_after = bad_line
                    elif rule is not None:
                        rules.append(rule)
        return tuple(rules)

    def note_unknown_elements(self, filtering: list[etree._Element]) -> None:
        """Elements upstream's XPath never looks at (typos, newer Windows-only event types)."""

        def walk(el: etree._Element) -> None:
            for ch in el:
                if not isinstance(ch.tag, str):
                    continue
                if ch.tag in TAG_FIELDS:
                    continue
                if ch.tag.lower() == "rulegroup":
                    walk(ch)
                    continue
                self.ignored(
                    ch.sourceline, f"unknown element <{_short(ch.tag)}> under <EventFiltering> is ignored"
                )
                walk(ch)

        for ef in filtering:
            walk(ef)

    def event_element(
        self, el: etree._Element, tag: str, default_relation: str, position: int
    ) -> tuple[EventRule | None, int | None]:
        """One event element -> EventRule; (None, None) when skipped, (None, line) on an incorrect field."""
        line = el.sourceline
        relation, group_name = default_relation, ""
        parent = el.getparent()
        if parent is not None and isinstance(parent.tag, str) and parent.tag.lower() == "rulegroup":
            rel = parent.get("groupRelation")
            if rel is not None:
                relation = OR if rel.lower() == OR else AND
            group_name = parent.get("name") or ""

        onmatch_attr, default_attr = el.get("onmatch"), el.get("default")
        if onmatch_attr is not None and default_attr is not None:
            self.warn(line, f"Error: Can't specify onmatch and default on {tag} (pick only one)")
            return None, None
        if onmatch_attr is None and default_attr is None:
            self.warn(line, f"Error: You need to specifiy the onmatch attribute on {tag}.")
            return None, None
        if onmatch_attr is not None:
            onmatch = {"include": INCLUDE, "exclude": EXCLUDE}.get(onmatch_attr.lower())
            attr_text = f'onmatch="{onmatch_attr}"'
        else:  # legacy spelling: default="include" means "log unless matched", i.e. onmatch="exclude"
            onmatch = {"include": EXCLUDE, "exclude": INCLUDE}.get(default_attr.lower())
            attr_text = f'default="{default_attr}"'
        if onmatch is None:
            manifest_include = schema.BY_RULE_TAG[tag][0].default_include
            onmatch = EXCLUDE if manifest_include else INCLUDE
            self.ignored(
                line,
                f"<{tag} {attr_text}>: unknown value, the manifest default applies "
                f'(behaves as onmatch="{onmatch}")',
            )

        fields = TAG_FIELDS[tag]
        items: list[Filter | RuleAggregate] = []
        for ch in el:
            if not isinstance(ch.tag, str):
                continue
            if ch.tag.lower() == "rule":
                rel = ch.get("groupRelation")
                rule_relation = AND if rel is not None and rel.lower() == AND else OR
                rule_name = ch.get("name") or ""
                filters: list[Filter] = []
                for fe in ch:
                    if not isinstance(fe.tag, str):
                        continue
                    if fe.tag not in fields:
                        return self.incorrect_field(fe, tag)
                    filters.append(self.filter(fe, rule_name or group_name))
                if filters:  # an empty <Rule/> leaves no trace in upstream's rule blob
                    items.append(RuleAggregate(rule_relation, rule_name, tuple(filters), ch.sourceline))
                else:
                    self.ignored(ch.sourceline, f"empty <{ch.tag}> in <{tag}> has no effect")
                continue
            if ch.tag not in fields:
                return self.incorrect_field(ch, tag)
            items.append(self.filter(ch, group_name))
        return EventRule(tag, onmatch, relation, group_name, tuple(items), line, position), None

    def incorrect_field(self, el: etree._Element, tag: str) -> tuple[None, int | None]:
        self.warn(el.sourceline, f"Incorrect field {_short(el.tag)}")
        self.ignored(
            el.sourceline,
            f"<{tag}> at this position and every later <{tag}> are dropped "
            f"because of the incorrect field <{_short(el.tag)}>",
        )
        return None, el.sourceline or 0

    def filter(self, el: etree._Element, inherited_name: str) -> Filter:
        cond_attr = el.get("condition")
        cond = lookup_condition(cond_attr)
        if cond is None:
            raise RuleError(
                self.name,
                el.sourceline,
                f'<{el.tag} condition="{_short(cond_attr)}">: Unknown condition: {_short(cond_attr)}. '
                f"{UNKNOWN_CONDITION_HELP}",
                upstream=f"Error: Unknown condition: {cond_attr}\n{UNKNOWN_CONDITION_HELP}",
            )
        name = el.get("name") or inherited_name
        if len(name.encode("utf-16-le", "surrogatepass")) // 2 > MAX_RULE_NAME:
            raise RuleError(
                self.name,
                el.sourceline,
                f"<{el.tag}>: Rule name is larger than {MAX_RULE_NAME} characters: {_short(name, 80)}",
                upstream=f"Error: Rule name is larger than {MAX_RULE_NAME} characters: {name}",
            )
        return Filter(el.tag, cond.name, el.text or "", name, el.sourceline)


def _short(s: object, limit: int = 60) -> str:
    s = str(s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _printable(s: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
