"""Bring your own data: a user's CSV or Parquet files, split by a date column into the daily partitions.

``python -m pipelines data import --config C --source 'exports/*.csv' --date-column created_at`` writes
one CSV per day at ``config.data.partition(day)``, with the config's columns in its header, so ingest
reads the files exactly as it reads the demo's. Nothing here knows a data set: the columns come from
the config's schema.

The source is streamed ``chunk_rows`` rows at a time and each day's rows are appended to a file in a
staging folder under the data root; only when every file has been read are the day files renamed into
place, one atomic rename each, so a failed or interrupted import leaves the existing partitions as they
were. Rows whose date does not parse, or whose field count does not match the header, are not dropped:
they go to ``<root>/_import_quarantine/<timestamp>.csv`` with their file, line and reason.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import glob
import gzip
import itertools
import operator
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.core.config import Config, Schema
from pipelines.core.contracts import PipelineError

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
STAGING = "_import_staging"
QUARANTINE = "_import_quarantine"
QUARANTINE_COLUMNS = ["file", "line", "reason", "raw"]  # line: the physical line in a CSV, the row in Parquet
# An ISO timestamp's UTC offset; removed when offsets are mixed, so that each row keeps the date written in it.
_ISO_OFFSET = r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_SHOWN = 5  # names or days listed in a message before "..."


class DataImportError(PipelineError):
    """The source cannot be imported as it is; the message says what to change (nothing was written)."""


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how; the CLI's ``data import`` flags."""

    source: str
    date_column: str
    date_format: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    start: date | None = None
    end: date | None = None
    keep_extra_columns: bool = False
    allow_missing_columns: bool = False
    overwrite: bool = False
    dry_run: bool = False
    chunk_rows: int = 100_000


@dataclass
class ImportReport:
    """What an import read, wrote and set aside."""

    root: Path
    files: list[Path]
    columns: list[str]
    dropped_columns: list[str]
    missing_columns: list[str]
    dry_run: bool
    rows_read: int = 0
    rows_by_day: dict[date, int] = field(default_factory=dict)
    outside_range: int = 0
    dated: tuple[date, date] | None = None  # the first and last day of the rows whose date parsed
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    quarantine_path: Path | None = None
    replaced: list[date] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return sum(self.rows_by_day.values())

    @property
    def quarantined(self) -> int:
        return sum(self.quarantine_reasons.values())

    def render(self, options: ImportOptions) -> str:
        """The summary the CLI prints."""
        wrote, replaced, quarantined = (
            ("would write", "would replace", "would quarantine")
            if self.dry_run
            else ("wrote", "replaced", "quarantined")
        )
        days = sorted(self.rows_by_day)
        lines = ["dry run: nothing was written"] if self.dry_run else []
        lines.append(f"read {_count(len(self.files), 'file')}, {_count(self.rows_read, 'row')}: {_names(self.files)}")
        span = "" if not days else f": {days[0]}" if len(days) == 1 else f": {days[0]} .. {days[-1]}"
        partitions = _count(len(days), "daily partition")
        lines.append(f"{wrote} {_count(self.rows_written, 'row')} to {partitions} under {self.root}{span}")
        gaps = _gaps(days)
        if gaps:
            lines.append(f"  {_count(len(gaps), 'day')} in that span without rows: {_names(gaps)}")
        if self.replaced and self.dry_run and not options.overwrite:
            lines.append(
                f"  {_count(len(self.replaced), 'partition')} already exist ({_names(self.replaced)}): "
                "without --overwrite the import will refuse"
            )
        elif self.replaced:
            lines.append(f"  {replaced} {_count(len(self.replaced), 'existing partition')}: {_names(self.replaced)}")
        lines.append(f"columns ({len(self.columns)}): {', '.join(self.columns)}")
        if self.missing_columns:
            lines.append(f"  declared but not in the source (allowed): {', '.join(self.missing_columns)}")
        if self.dropped_columns:
            lines.append(f"  not written (--keep-extra-columns keeps them): {_names(self.dropped_columns)}")
        if self.outside_range:
            lines.append(f"skipped {_count(self.outside_range, 'row')} dated {_outside(options)}")
        if self.quarantined:
            reasons = "; ".join(f"{n:,} {reason}" for reason, n in self.quarantine_reasons.most_common())
            where = f" -> {self.quarantine_path}" if self.quarantine_path else ""
            lines.append(f"{quarantined} {_count(self.quarantined, 'row')} ({reasons}){where}")
        else:
            lines.append("quarantined: none")
        return "\n".join(lines)


@dataclass
class _Chunk:
    """Up to ``chunk_rows`` rows of one file, already projected onto the output columns."""

    rows: list[Sequence[str]]
    lines: list[int]
    dates: list[str]
    raw: list[Sequence[str]]  # every source field, for the quarantine
    separator: str  # joins a raw row back into one line
    malformed: dict[int, str] = field(default_factory=dict)  # row index -> reason, for rows of the wrong width


@dataclass(frozen=True)
class _Source:
    """One input file and its header; ``chunks`` streams it."""

    path: Path
    columns: list[str]
    chunks: Callable[[list[str], ImportOptions], Iterator[_Chunk]]
    iso_dates: bool = False  # a typed Parquet date/timestamp column: ISO text, whatever --date-format says


def import_data(config: Config, options: ImportOptions, now: datetime | None = None) -> ImportReport:
    """Partition the files ``options.source`` names into ``config.data``'s daily layout.

    Args:
        config: the use case; its schema says which columns a partition holds.
        options: the source, its date column and the CLI's flags.
        now: names the quarantine file (default: the current local time).

    Returns:
        The report of what was (or, with ``dry_run``, would be) written.

    Raises:
        DataImportError: no file matches, a file is unreadable or lacks the date column or a declared
            column, no row has a usable date, or partitions exist and ``overwrite`` is off. Nothing is
            written in that case.
    """
    if options.start and options.end and options.start > options.end:
        raise DataImportError(f"--start {options.start} is after --end {options.end}")
    sources = [_open(path, options) for path in resolve_sources(options.source)]
    columns, dropped, missing = plan_columns(config.data_schema, sources, options)
    root = config.data.root
    report = ImportReport(root, [s.path for s in sources], columns, dropped, missing, options.dry_run)
    staging, new_root = None, not root.exists()
    if not options.dry_run:
        (root / STAGING).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="import-", dir=root / STAGING))
    try:
        days = _DayFiles(staging, columns)
        quarantine = _Quarantine(staging / "quarantine.csv" if staging else None)
        for source in sources:
            with _readable(source.path):
                for chunk in source.chunks(columns, options):
                    _split(chunk, source, options, days, quarantine, report)
        report.rows_by_day = dict(sorted(days.counts.items()))
        report.quarantine_reasons = quarantine.reasons
        _check_something_to_write(report, quarantine, options)
        report.replaced = _existing(config, report.rows_by_day, options)
        if staging:
            report.quarantine_path = quarantine.publish(root / QUARANTINE, now or datetime.now())
            for day in report.rows_by_day:
                target = config.data.partition(day)
                target.parent.mkdir(parents=True, exist_ok=True)
                days.path(day).replace(target)
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(root / STAGING)
            if new_root:
                _remove_if_empty(root)  # a failed first import leaves no trace
    return report


def resolve_sources(source: str) -> list[Path]:
    """The files a path or glob names, sorted; a directory or an unknown extension is an error."""
    pattern = os.path.expanduser(source)
    if glob.has_magic(pattern):
        paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if not Path(p).is_dir())
        if not paths:
            where = "" if Path(pattern).is_absolute() else f" (relative paths start at {Path.cwd()})"
            raise DataImportError(f"no file matches {source!r}{where}")
    else:
        path = Path(pattern)
        if path.is_dir():
            raise DataImportError(f"{path} is a directory: name its files with a quoted glob, e.g. '{path}/*.csv'")
        if not path.exists():
            raise DataImportError(f"{path} does not exist")
        paths = [path]
    unknown = [p for p in paths if _kind(p) is None]
    if unknown:
        raise DataImportError(
            f"cannot tell the format of {_names(unknown)}: CSV files end in {', '.join(CSV_SUFFIXES)}, "
            f"Parquet files in {', '.join(PARQUET_SUFFIXES)} (narrow the glob to skip other files)"
        )
    return paths


def plan_columns(
    schema: Schema, sources: Sequence[_Source], options: ImportOptions
) -> tuple[list[str], list[str], list[str]]:
    """The partitions' header, the source columns left out, and the declared columns the source lacks.

    The header is the schema's features and label, then its ``ignore`` and annotator columns where the
    source has them, then (with ``keep_extra_columns``) every other source column.

    Raises:
        DataImportError: a file lacks the date column, or a feature or the label (unless
            ``allow_missing_columns``), with the closest source names as a hint.
    """
    seen = list(dict.fromkeys(c for s in sources for c in s.columns))
    for source in sources:
        if options.date_column not in source.columns:
            raise DataImportError(
                f"{source.path} has no date column {options.date_column!r}{_hint(options.date_column, seen)}; "
                f"its columns: {_names(source.columns, 20)}{_delimiter_hint(source)}"
            )
    required = schema.columns
    lacking = {c: [s.path for s in sources if c not in s.columns] for c in required}
    lacking = {c: paths for c, paths in lacking.items() if paths}
    if lacking and not options.allow_missing_columns:
        spare = [c for c in seen if c not in required]
        details = [
            f"  {c}: not in {_names(paths)}{_hint(c, spare) or ' (no close match)'}" for c, paths in lacking.items()
        ]
        raise DataImportError(
            f"the source lacks {_count(len(lacking), 'column')} the config declares (nothing was written):\n"
            + "\n".join(details)
            + "\nrename them in the source or in the config, or pass --allow-missing-columns"
        )
    optional = [*schema.ignore, *schema.label.annotators]
    declared = [c for c in [*required, *optional] if c in seen]
    extra = [c for c in seen if c not in declared]
    columns = declared + (extra if options.keep_extra_columns else [])
    missing = [c for c in required if c not in seen]
    return columns, ([] if options.keep_extra_columns else extra), missing


def parse_days(values: Sequence[str], date_format: str | None) -> pd.Series:
    """Each value's calendar day (a midnight ``Timestamp``), or ``NaT`` where it does not parse.

    Without a format, ISO 8601 dates and timestamps are accepted; a timestamp with a UTC offset keeps
    the date written in it (``2026-01-05T23:30-05:00`` is 2026-01-05), never the date in UTC.
    """
    text = pd.Series(values, dtype=object).str.strip()
    if date_format is None:
        try:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except ValueError:  # mixed UTC offsets, or some values with one and some without: drop them all
            parsed = pd.to_datetime(text.str.replace(_ISO_OFFSET, r"\1", regex=True), format="ISO8601", errors="coerce")
    else:
        try:
            parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        except ValueError:  # mixed UTC offsets (%z): each value keeps its own calendar date
            parsed = pd.to_datetime(text.map(lambda v: _strptime_day(v, date_format)))
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)  # the wall-clock time in the value's own offset
    return parsed.dt.normalize()


def _strptime_day(value: str, date_format: str) -> date | None:
    try:
        return datetime.strptime(value, date_format).date()
    except ValueError:
        return None


def _split(
    chunk: _Chunk,
    source: _Source,
    options: ImportOptions,
    days: _DayFiles,
    quarantine: _Quarantine,
    report: ImportReport,
) -> None:
    """Route one chunk's rows to their day files, the quarantine, or (outside --start/--end) nowhere."""
    report.rows_read += len(chunk.rows)
    parsed = parse_days(chunk.dates, None if source.iso_dates else options.date_format)
    codes, uniques = pd.factorize(parsed)
    if len(uniques):
        first, last = uniques.min().date(), uniques.max().date()
        report.dated = (min(first, report.dated[0]), max(last, report.dated[1])) if report.dated else (first, last)
    keep = [
        None if (options.start and d.date() < options.start) or (options.end and d.date() > options.end) else d.date()
        for d in uniques
    ]
    if options.date_format is None or source.iso_dates:
        unparsed = "date is not ISO 8601"
    else:
        unparsed = f"date does not match --date-format {options.date_format!r}"
    groups: dict[date, list[Sequence[str]]] = {}
    bad: list[tuple[int, str, str, str]] = []
    for i, code in enumerate(codes.tolist()):
        if i in chunk.malformed:
            raw = chunk.separator.join(chunk.raw[i])
            bad.append((chunk.lines[i], chunk.malformed[i], raw, raw))
        elif code < 0:
            value = chunk.dates[i].strip()
            bad.append(
                (chunk.lines[i], unparsed if value else "date is empty", chunk.separator.join(chunk.raw[i]), value)
            )
        elif keep[code] is None:
            report.outside_range += 1
        else:
            groups.setdefault(keep[code], []).append(chunk.rows[i])
    for day, rows in groups.items():
        days.append(day, rows)
    quarantine.extend(source.path, bad)


def _check_something_to_write(report: ImportReport, quarantine: _Quarantine, options: ImportOptions) -> None:
    if report.rows_written:
        return
    if not report.rows_read:
        raise DataImportError(f"no data rows in {_names(report.files)}: nothing to import")
    if report.outside_range:
        assert report.dated is not None
        raise DataImportError(
            f"all {_count(report.outside_range, 'row')} with a usable date are dated {_outside(options)} "
            f"(the source runs from {report.dated[0]} to {report.dated[1]}): nothing was written"
        )
    fix = (
        "ISO 8601 is YYYY-MM-DD, optionally with a time; for other forms pass --date-format, "
        "e.g. --date-format '%d/%m/%Y' for 05/01/2026"
        if options.date_format is None
        else f"check --date-format {options.date_format!r} (Python strptime codes)"
    )
    raise DataImportError(
        f"no row of {options.date_column!r} has a usable date ({quarantine.summary()}); "
        f"e.g. {', '.join(quarantine.examples)}: {fix}. Nothing was written"
    )


def _existing(config: Config, rows_by_day: dict[date, int], options: ImportOptions) -> list[date]:
    """The days whose partition is already there; refuses unless ``overwrite`` (or a dry run)."""
    existing = [d for d in rows_by_day if config.data.partition(d).exists()]
    for day in existing:
        if not config.data.partition(day).is_file():
            raise DataImportError(f"{config.data.partition(day)} is not a file: move it away, then import again")
    if existing and not (options.overwrite or options.dry_run):
        share = (
            f"all {len(existing)}"
            if len(existing) == len(rows_by_day)
            else f"{len(existing)} of the {len(rows_by_day)}"
        )
        raise DataImportError(
            f"{share} partitions to write already exist "
            f"({_names(existing)}; e.g. {config.data.partition(existing[0])}): nothing was written. "
            f"Pass --overwrite to replace them"
        )
    return existing


class _DayFiles:
    """One CSV per day in the staging folder, appended chunk by chunk (or only counted, for a dry run)."""

    def __init__(self, staging: Path | None, columns: list[str]) -> None:
        self.staging, self.columns, self.counts = staging, columns, Counter[date]()

    def path(self, day: date) -> Path:
        assert self.staging is not None
        return self.staging / f"{day.isoformat()}.csv"

    def append(self, day: date, rows: list[Sequence[str]]) -> None:
        if self.staging is not None:
            new = day not in self.counts
            with self.path(day).open("a", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                if new:
                    writer.writerow(self.columns)
                writer.writerows(rows)
        self.counts[day] += len(rows)


class _Quarantine:
    """Rows set aside, with their file, line and reason; written to staging, published at the end."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.reasons, self.examples = path, Counter[str](), []

    def extend(self, source: Path, rows: list[tuple[int, str, str, str]]) -> None:
        """Set aside ``rows`` of ``source``: (line, reason, raw row, offending value) each."""
        if not rows:
            return
        if self.path is not None:
            new = not self.reasons
            with self.path.open("a", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                if new:
                    writer.writerow(QUARANTINE_COLUMNS)
                writer.writerows([str(source.resolve()), line, reason, raw] for line, reason, raw, _ in rows)
        for line, _, _, value in rows[: 3 - len(self.examples)]:
            self.examples.append(f"{value[:60]!r} ({source.name} line {line})")
        self.reasons.update(reason for _, reason, _, _ in rows)

    def summary(self) -> str:
        return "; ".join(f"{n:,} {reason}" for reason, n in self.reasons.most_common())

    def publish(self, folder: Path, now: datetime) -> Path | None:
        if self.path is None or not self.reasons:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        stamp = now.strftime("%Y%m%dT%H%M%S")
        target = folder / f"{stamp}.csv"
        for n in itertools.count(2):
            if not target.exists():
                break
            target = folder / f"{stamp}-{n}.csv"
        self.path.replace(target)
        return target


def _open(path: Path, options: ImportOptions) -> _Source:
    """Read ``path``'s header (nothing else yet) and return the source that streams it."""
    with _readable(path):
        return _open_parquet(path, options) if _kind(path) == "parquet" else _open_csv(path, options)


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Turn a failure to read ``path`` into a message naming it."""
    try:
        yield
    except OSError as exc:
        raise DataImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except pa.ArrowException as exc:
        raise DataImportError(f"{path} is not a readable Parquet file: {exc}") from None


def _open_csv(path: Path, options: ImportOptions) -> _Source:
    delimiter = _delimiter(path, options.delimiter)
    with _text(path, options.encoding) as fh:
        try:
            header = next(csv.reader(fh, delimiter=delimiter), None)
        except UnicodeDecodeError:
            raise _not_encoded(path, options.encoding, 1) from None
    if not header:
        raise DataImportError(f"{path} is empty: a CSV source needs a header row")
    header = [h.strip().lstrip("\ufeff").strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataImportError(f"{path}: the header names {', '.join(map(repr, dupes))} more than once")

    def chunks(columns: list[str], opts: ImportOptions) -> Iterator[_Chunk]:
        width, at = len(header), header.index(opts.date_column)
        project = _projection([header.index(c) if c in header else None for c in columns])
        with _text(path, opts.encoding) as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            next(reader)
            while True:
                chunk, read = _Chunk([], [], [], [], delimiter), 0
                last = reader.line_num
                try:
                    for fields in itertools.islice(reader, opts.chunk_rows):
                        read += 1
                        if len(fields) == width:
                            chunk.rows.append(project(fields))
                            chunk.dates.append(fields[at])
                        elif fields:  # a blank line is no row; a row of another width is quarantined
                            chunk.malformed[len(chunk.rows)] = f"expected {width} fields, got {len(fields)}"
                            chunk.rows.append(())
                            chunk.dates.append("")
                        if fields:
                            chunk.lines.append(last + 1)  # where the row starts: a quoted field may span lines
                            chunk.raw.append(fields)
                        last = reader.line_num
                except UnicodeDecodeError:
                    raise _not_encoded(path, opts.encoding, reader.line_num + 1) from None
                except csv.Error as exc:
                    raise DataImportError(f"{path} line {reader.line_num}: cannot parse the CSV: {exc}") from None
                if chunk.rows:
                    yield chunk
                if read < opts.chunk_rows:
                    return

    return _Source(path, header, chunks)


def _open_parquet(path: Path, options: ImportOptions) -> _Source:
    schema = pq.read_schema(path)
    names = list(schema.names)

    def chunks(columns: list[str], opts: ImportOptions) -> Iterator[_Chunk]:
        wanted = [c for c in dict.fromkeys([*columns, opts.date_column]) if c in names]
        offset = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=opts.chunk_rows, columns=wanted):
            text = {c: _strings(batch.column(i), path, c) for i, c in enumerate(batch.schema.names)}
            stamp = batch.column(batch.schema.names.index(opts.date_column))
            if pa.types.is_timestamp(stamp.type) and stamp.type.tz is not None:  # the wall-clock date, as written
                dates = _strings(pc.local_timestamp(stamp), path, opts.date_column)
            else:
                dates = text[opts.date_column]
            empty = [""] * batch.num_rows
            rows = list(zip(*(text.get(c, empty) for c in columns), strict=True)) if columns else [()] * len(empty)
            lines = list(range(offset + 1, offset + batch.num_rows + 1))
            raw = list(zip(*text.values(), strict=True))
            offset += batch.num_rows
            yield _Chunk(rows, lines, dates, raw, ",")

    typed = options.date_column in names and _temporal(schema.field(names.index(options.date_column)).type)
    return _Source(path, names, chunks, iso_dates=typed)


def _temporal(kind: pa.DataType) -> bool:
    return pa.types.is_date(kind) or pa.types.is_timestamp(kind)


def _strings(array: pa.Array, path: Path, column: str) -> list[str]:
    """A Parquet column as the text a CSV partition holds (nulls empty)."""
    try:
        return pc.fill_null(pc.cast(array, pa.string()), "").to_pylist()
    except pa.ArrowException:
        raise DataImportError(f"{path}: column {column!r} of type {array.type} cannot be written to a CSV") from None


def _projection(positions: list[int | None]) -> Callable[[list[str]], Sequence[str]]:
    """A function from a source row to the output columns (empty where this file lacks a column)."""
    if positions and all(p is not None for p in positions):
        pick = operator.itemgetter(*positions)
        return (lambda fields: (pick(fields),)) if len(positions) == 1 else pick
    return lambda fields: tuple("" if p is None else fields[p] for p in positions)


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "csv" if name.endswith(CSV_SUFFIXES) else None


def _delimiter(path: Path, given: str | None) -> str:
    if given is None:
        return "\t" if ".tsv" in path.name.lower() else ","
    named = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    delimiter = named.get(given.lower(), given)
    if len(delimiter) != 1:
        raise DataImportError(f"--delimiter must be one character (or tab, \\t, semicolon, pipe), not {given!r}")
    return delimiter


def _text(path: Path, encoding: str) -> IO[str]:
    # utf-8-sig reads plain UTF-8 too, and drops a byte-order mark instead of gluing it to the first column's name.
    encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return path.open(encoding=encoding, newline="")


def _not_encoded(path: Path, encoding: str, line: int) -> DataImportError:
    return DataImportError(
        f"{path} is not valid {encoding} (near line {line}): pass its encoding, e.g. --encoding latin-1 "
        "(the partitions are always written as UTF-8)"
    )


def _hint(name: str, candidates: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    return f" (close match: {', '.join(repr(lowered[c]) for c in close)})" if close else ""


def _delimiter_hint(source: _Source) -> str:
    if len(source.columns) != 1 or _kind(source.path) != "csv":
        return ""
    found = [d for d in ";\t|," if d in source.columns[0]]
    return f"; the header is one column: is the delimiter {found[0]!r}? pass --delimiter" if found else ""


def _outside(options: ImportOptions) -> str:
    if options.start and options.end:
        return f"outside {options.start} .. {options.end}"
    return f"before {options.start}" if options.start else f"after {options.end}"


def _gaps(days: list[date]) -> list[date]:
    """The days between the first and the last of ``days`` (sorted) that are not among them."""
    span = (days[0] + timedelta(k) for k in range((days[-1] - days[0]).days)) if days else iter(())
    present = set(days)
    return [d for d in span if d not in present]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _names(items: Sequence[object], shown: int = _SHOWN) -> str:
    text = ", ".join(str(i) for i in items[:shown])
    return text + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # other imports are still staging there
        folder.rmdir()
