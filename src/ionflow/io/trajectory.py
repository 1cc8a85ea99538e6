"""Trajectory readers: LAMMPS text dumps (fast, numpy/pandas based) and anything ASE reads.

Every reader yields *unwrapped* Cartesian positions (Å) in chunks of frames, so long runs never
have to sit in memory as a whole:

- LAMMPS ``dump custom`` text (``.gz`` ok) with ``element`` or ``type`` and one of
  ``xu yu zu`` | ``x y z`` (+ ``ix iy iz``) | ``xsu ysu zsu`` | ``xs ys zs`` (+ ``ix iy iz``).
  Image flags are applied exactly; wrapped coordinates without image flags are unwrapped
  frame to frame by the minimum image (valid while no atom moves more than half a cell
  between frames). Orthogonal, restricted triclinic (``xy xz yz``) and general triclinic
  (``abc origin``) boxes. The atom lines of many frames are parsed in one C call
  (pandas), never with a Python loop over atoms.
- Everything else through ``ase.io.iread`` (extxyz, ...), unwrapped frame to frame.

Bad input raises :class:`ionflow.errors.InputError` naming the file and the problem: NaN or
infinite coordinates, a truncated file, a changing atom count, a missing cell, a missing
coordinate column, frames that are not equally spaced in time.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError

#: frames per chunk handed to the analysis (a multiple of the coarse-graining windows used there)
CHUNK_FRAMES = 2000
#: bytes read from a LAMMPS dump per IO call
READ_BYTES = 1 << 25


@dataclass
class Chunk:
    """A block of consecutive frames: unwrapped positions (n, N, 3) Å, cells (n, 3, 3) Å (rows
    a, b, c) and LAMMPS TIMESTEP values (n,) or None."""

    positions: np.ndarray
    cells: np.ndarray
    timesteps: np.ndarray | None = None


@dataclass
class Trajectory:
    """A whole trajectory in memory (tests, small files). Use :func:`iter_chunks` for long runs."""

    path: str
    symbols: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    timesteps: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]


class TrajectoryReader:
    """Opens a trajectory, reads its first frame (symbols, masses) and streams chunks.

    ``type_map`` maps LAMMPS ``type`` values to element symbols ({1: "Li", ...}) for dumps
    without an ``element`` column; without it the symbols are the type numbers as strings.
    """

    def __init__(self, path, *, type_map: dict[int, str] | None = None, chunk_frames: int = CHUNK_FRAMES):
        self.path = Path(path)
        self.type_map = type_map or {}
        self.chunk_frames = int(chunk_frames)
        if not self.path.is_file():
            raise InputError(self.path, "file not found")
        if self.path.stat().st_size == 0:
            raise InputError(self.path, "empty file")
        self.format = "lammps-dump" if _is_lammps_dump(self.path) else "ase"
        self.symbols: np.ndarray | None = None
        self.masses: np.ndarray | None = None
        self.coordinates: str = ""
        self.n_frames = 0
        self._impl = _LammpsDump(self) if self.format == "lammps-dump" else _AseTrajectory(self)
        self._impl.open()

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def __iter__(self) -> Iterator[Chunk]:
        self.n_frames = 0
        for chunk in self._impl.chunks():
            bad = ~np.isfinite(chunk.positions)
            if bad.any():
                f, a, _ = np.argwhere(bad)[0]
                raise InputError(self.path, f"non-finite (NaN/inf) coordinate at frame {self.n_frames + f}, "
                                            f"atom index {a}", field="positions")
            if not np.isfinite(chunk.cells).all():
                raise InputError(self.path, "non-finite cell", field="cell")
            self.n_frames += chunk.positions.shape[0]
            yield chunk
        if self.n_frames == 0:
            raise InputError(self.path, "no frames")


def iter_chunks(path, **kw) -> Iterator[Chunk]:
    yield from TrajectoryReader(path, **kw)


def read_trajectory(path, **kw) -> Trajectory:
    """Read a whole trajectory into memory (unwrapped positions)."""
    reader = TrajectoryReader(path, **kw)
    chunks = list(reader)
    ts = None if chunks[0].timesteps is None else np.concatenate([c.timesteps for c in chunks])
    return Trajectory(path=str(path), symbols=reader.symbols,
                      positions=np.concatenate([c.positions for c in chunks]),
                      cells=np.concatenate([c.cells for c in chunks]), timesteps=ts,
                      info={"format": reader.format, "coordinates": reader.coordinates})


def masses_of(symbols) -> np.ndarray | None:
    """Atomic masses (amu) for element symbols; None if any symbol is not an element."""
    from ase.data import atomic_masses, atomic_numbers

    try:
        return np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    except KeyError:
        return None


# ----------------------------------------------------------------------------------------------
# unwrapping

class _Unwrapper:
    """Minimum-image unwrapping of fractional coordinates, carried across chunks."""

    def __init__(self):
        self.prev_s = None      # last wrapped fractional frame (N, 3)
        self.prev_u = None      # last unwrapped fractional frame (N, 3)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        if self.prev_s is None:
            self.prev_s, self.prev_u = s[0], s[0]
        ds = np.diff(s, axis=0, prepend=self.prev_s[None])
        ds -= np.rint(ds)
        u = self.prev_u + np.cumsum(ds, axis=0)
        self.prev_s, self.prev_u = s[-1], u[-1]
        return u


def _frac(pos: np.ndarray, cells: np.ndarray, origin: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(cells)
    return np.einsum("fni,fij->fnj", pos - origin[:, None, :], inv)


def _cart(frac: np.ndarray, cells: np.ndarray, origin: np.ndarray) -> np.ndarray:
    return np.einsum("fni,fij->fnj", frac, cells) + origin[:, None, :]


# ----------------------------------------------------------------------------------------------
# LAMMPS text dump

def _open_bytes(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _is_lammps_dump(path: Path) -> bool:
    try:
        with _open_bytes(path) as fh:
            head = fh.read(64)
    except OSError:
        return False
    return head.startswith(b"ITEM:")


_COORD_SETS = (  # (columns, kind, needs image flags)
    (("xu", "yu", "zu"), "unwrapped", False),
    (("x", "y", "z"), "wrapped", True),
    (("xsu", "ysu", "zsu"), "scaled-unwrapped", False),
    (("xs", "ys", "zs"), "scaled", True),
)


class _LammpsDump:
    def __init__(self, reader: TrajectoryReader):
        self.r = reader
        self.path = reader.path

    def err(self, problem, field=None):
        return InputError(self.path, problem, field=field)

    # -- first frame: layout ------------------------------------------------------------------
    def open(self):
        with _open_bytes(self.path) as fh:
            buf = fh.read(1 << 20)
            while True:
                more = fh.read(1 << 20)
                k = buf.find(b"ITEM: ATOMS")
                if k >= 0 and buf.count(b"\n", k) > self._natoms_hint(buf) or not more:
                    break
                buf += more
        lines = buf.split(b"\n")
        self.marker = lines[0].strip()
        try:
            i_atoms = next(i for i, ln in enumerate(lines) if ln.startswith(b"ITEM: ATOMS"))
        except StopIteration:
            raise self.err("truncated or not a LAMMPS dump: no 'ITEM: ATOMS' line") from None
        header = lines[:i_atoms]
        self.header_items = [ln for ln in header if ln.startswith(b"ITEM:")]
        self.item_index = {ln: i for i, ln in enumerate(header) if ln.startswith(b"ITEM:")}
        try:
            i_ts = self._item(header, b"ITEM: TIMESTEP")
            i_n = self._item(header, b"ITEM: NUMBER OF ATOMS")
            i_box = next(i for i, ln in enumerate(header) if ln.startswith(b"ITEM: BOX BOUNDS"))
        except StopIteration:
            raise self.err("first frame lacks ITEM: TIMESTEP / NUMBER OF ATOMS / BOX BOUNDS", "header") from None
        self.i_ts, self.i_n, self.i_box = i_ts + 1, i_n + 1, i_box + 1
        self.box_item = header[i_box]
        box_words = self.box_item.split()[3:]
        self.box_style = "abc" if b"abc" in box_words else ("triclinic" if b"xy" in box_words else "orthogonal")
        self.header_len = i_atoms
        try:
            self.natoms = int(header[self.i_n])
        except (ValueError, IndexError):
            raise self.err("bad NUMBER OF ATOMS", "header") from None
        if self.natoms <= 0:
            raise self.err("no atoms", "NUMBER OF ATOMS")
        self.atoms_item = lines[i_atoms].rstrip()
        cols = [c.decode() for c in self.atoms_item.split()[2:]]
        self.columns = cols
        if "id" not in cols:
            raise self.err("dump has no 'id' column", "ITEM: ATOMS")
        coords = None
        for names, kind, needs_img in _COORD_SETS:
            if all(n in cols for n in names):
                coords = (names, kind, needs_img)
                break
        if coords is None:
            raise self.err("no coordinate columns (need xu yu zu, x y z, xsu ysu zsu or xs ys zs)", "ITEM: ATOMS")
        names, kind, needs_img = coords
        self.images = needs_img and all(n in cols for n in ("ix", "iy", "iz"))
        self.kind = kind
        self.scaled = kind.startswith("scaled")
        self.unwrap_by_min_image = needs_img and not self.images
        self.r.coordinates = " ".join(names) + (" + ix iy iz" if self.images else "") + (
            " (unwrapped by minimum image)" if self.unwrap_by_min_image else "")
        use = ["id", *names] + (["ix", "iy", "iz"] if self.images else [])
        self.usecols = [cols.index(c) for c in use]
        # symbols from the first frame (rows sorted by id below)
        atom_lines = lines[i_atoms + 1:i_atoms + 1 + self.natoms]
        if len(atom_lines) < self.natoms or any(not ln.strip() for ln in atom_lines):
            raise self.err("truncated: first frame has fewer atom lines than NUMBER OF ATOMS")
        toks = [ln.split() for ln in atom_lines]
        if any(len(t) != len(cols) for t in toks):
            raise self.err("atom line with a wrong number of columns in frame 0", "ITEM: ATOMS")
        try:
            ids = np.array([int(t[cols.index("id")]) for t in toks])
        except ValueError:
            raise self.err("non-integer atom id in frame 0", "id") from None
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order]
        if np.any(np.diff(self.ids) == 0):
            raise self.err("duplicate atom ids in frame 0", "id")
        if "element" in cols:
            sym = [t[cols.index("element")].decode() for t in toks]
        elif "type" in cols:
            types = [int(t[cols.index("type")]) for t in toks]
            sym = [self.r.type_map.get(t, str(t)) for t in types]
        else:
            raise self.err("dump has neither an 'element' nor a 'type' column", "ITEM: ATOMS")
        self.r.symbols = np.array(sym)[order]
        if "mass" in cols:
            self.r.masses = np.array([float(t[cols.index("mass")]) for t in toks])[order]
        else:
            self.r.masses = masses_of(self.r.symbols)
        first = atom_lines[0]
        self.regex_sep = bool(re.search(rb"  |\t|^\s|\s$", first))

    @staticmethod
    def _natoms_hint(buf: bytes) -> int:
        k = buf.find(b"ITEM: NUMBER OF ATOMS")
        if k < 0:
            return 0
        try:
            return int(buf[k:].split(b"\n", 2)[1])
        except (ValueError, IndexError):
            return 0

    @staticmethod
    def _item(header, name):
        return next(i for i, ln in enumerate(header) if ln.rstrip() == name)

    # -- streaming ------------------------------------------------------------------------------
    def chunks(self) -> Iterator[Chunk]:
        self.frame0 = 0
        self.unwrap = _Unwrapper()
        pending: list[tuple] = []
        with _open_bytes(self.path) as fh:
            carry = b""
            eof = False
            while not eof:
                data = fh.read(READ_BYTES)
                eof = not data
                buf = carry + data
                if not buf:
                    break
                if eof:
                    cut = len(buf)
                else:
                    cut = buf.rfind(b"\n" + self.marker)
                    if cut < 0:
                        carry = buf
                        continue
                    cut += 1
                pending.extend(self._split_frames(buf, cut, eof))
                carry = buf[cut:]
                while len(pending) >= self.r.chunk_frames:
                    block, pending = pending[:self.r.chunk_frames], pending[self.r.chunk_frames:]
                    yield self._parse(block)
        if pending:
            yield self._parse(pending)

    def _split_frames(self, buf: bytes, end: int, eof: bool) -> list[tuple]:
        """Cut buf[:end] into frames: (header bytes, atom-block memoryview) per frame."""
        out = []
        pos = 0
        find = buf.find
        mv = memoryview(buf)
        while pos < end:
            if not buf.startswith(self.marker, pos):
                raise self.err(f"expected '{self.marker.decode()}' at frame {self.frame0 + len(out)} "
                               "(corrupt or truncated file)")
            a = find(b"ITEM: ATOMS", pos, end)
            if a < 0:
                raise self.err(f"truncated: frame {self.frame0 + len(out)} has no atoms section")
            a_end = find(b"\n", a, end)
            if a_end < 0:
                raise self.err(f"truncated inside frame {self.frame0 + len(out)}")
            nxt = find(b"\nITEM:", a_end, end)
            nxt = end if nxt < 0 else nxt + 1
            if mv[a:a_end].tobytes().rstrip() != self.atoms_item:
                raise self.err(f"frame {self.frame0 + len(out)} has different columns: "
                               f"{mv[a:a_end].tobytes().decode(errors='replace')!r}", "ITEM: ATOMS")
            out.append((buf[pos:a], mv[a_end + 1:nxt]))
            pos = nxt
        if eof and out:
            last = out[-1][1]
            if len(last) == 0 or last[-1] != 10:
                raise self.err(f"truncated: last frame ({self.frame0 + len(out) - 1}) ends mid-line")
        self.frame0 += len(out)
        return out

    def _parse(self, frames: list[tuple]) -> Chunk:
        f0 = self.frame0_parse = getattr(self, "frame0_parse", 0)
        nf = len(frames)
        N = self.natoms
        # headers: timestep, atom count, box (Python per frame, a few small splits)
        ts = np.empty(nf, dtype=np.int64)
        box_rows = []
        counts = np.empty(nf, dtype=np.int64)
        hl = self.header_len
        for k, (hdr, _) in enumerate(frames):
            lines = hdr.split(b"\n")
            if len(lines) < hl:
                raise self.err(f"truncated or malformed header in frame {f0 + k}", "header")
            try:
                ts[k] = int(lines[self.i_ts])
                counts[k] = int(lines[self.i_n])
            except ValueError:
                raise self.err(f"bad TIMESTEP or NUMBER OF ATOMS in frame {f0 + k}", "header") from None
            if lines[self.i_box - 1] != self.box_item:
                raise self.err(f"box style changes in frame {f0 + k}", "BOX BOUNDS")
            box_rows.append(b" ".join(lines[self.i_box:self.i_box + 3]))
        bad = np.flatnonzero(counts != N)
        if bad.size:
            k = bad[0]
            raise self.err(f"atom count changes from {N} to {counts[k]} at frame {f0 + k}",
                           "NUMBER OF ATOMS")
        try:
            box = np.array(b" ".join(box_rows).split(), dtype=np.float64).reshape(nf, -1)
        except ValueError:
            raise self.err(f"unreadable box bounds in frames {f0}..{f0 + nf - 1}", "BOX BOUNDS") from None
        cells, origin = self._cells(box, f0)
        # atom lines of all frames, one parse
        blob = b"".join(blk for _, blk in frames)
        n_lines = blob.count(b"\n")
        if n_lines != nf * N:
            for k, (_, blk) in enumerate(frames):
                c = blk.tobytes().count(b"\n")
                if c != N:
                    what = "truncated" if (k == nf - 1 and c < N) else "atom lines do not match NUMBER OF ATOMS"
                    raise self.err(f"{what}: frame {f0 + k} has {c} atom lines, expected {N}")
        vals = self._table(blob, f0, nf)
        if vals.shape != (nf * N, len(self.usecols)):
            raise self.err(f"malformed atom lines in frames {f0}..{f0 + nf - 1}", "ITEM: ATOMS")
        vals = vals.reshape(nf, N, -1)
        ids = vals[:, :, 0]
        if not np.array_equal(ids, np.broadcast_to(self.ids, ids.shape).astype(ids.dtype)):
            order = np.argsort(ids, axis=1, kind="stable")
            vals = np.take_along_axis(vals, order[:, :, None], axis=1)
            bad = np.flatnonzero(~(vals[:, :, 0] == self.ids).all(axis=1))
            if bad.size:
                raise self.err(f"atom ids in frame {f0 + bad[0]} differ from frame 0", "id")
        pos = np.ascontiguousarray(vals[:, :, 1:4])
        if not np.isfinite(pos).all():
            f, a, _ = np.argwhere(~np.isfinite(pos))[0]
            raise self.err(f"non-finite (NaN/inf) coordinate at frame {f0 + f}, atom id {self.ids[a]}",
                           "ITEM: ATOMS")
        if self.scaled:
            frac = pos
        else:
            frac = None
        if self.images:
            img = vals[:, :, 4:7]
            if frac is None:
                frac = _frac(pos, cells, origin)
            frac = frac + img
        if self.unwrap_by_min_image:
            if frac is None:
                frac = _frac(pos, cells, origin)
            frac = self.unwrap(frac)
        if frac is not None:
            pos = _cart(frac, cells, origin)
        self.frame0_parse = f0 + nf
        return Chunk(positions=pos, cells=cells, timesteps=ts)

    def _table(self, blob: bytes, f0: int, nf: int) -> np.ndarray:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a listed dependency
            pd = None
        try:
            if pd is not None:
                df = pd.read_csv(io.BytesIO(blob), sep=r"\s+" if self.regex_sep else " ", header=None,
                                 usecols=self.usecols, engine="c", dtype=np.float64,
                                 names=list(range(len(self.columns))))
                return df[self.usecols].to_numpy()
            return np.loadtxt(io.BytesIO(blob), usecols=self.usecols, ndmin=2)
        except (ValueError, TypeError) as exc:
            raise self.err(f"unparseable atom line in frames {f0}..{f0 + nf - 1} ({str(exc).splitlines()[0]})",
                           "ITEM: ATOMS") from None
        except Exception as exc:  # pandas ParserError
            raise self.err(f"unparseable atom lines in frames {f0}..{f0 + nf - 1} "
                           f"({str(exc).splitlines()[0]})", "ITEM: ATOMS") from None

    def _cells(self, box: np.ndarray, f0: int):
        nf = box.shape[0]
        cells = np.zeros((nf, 3, 3))
        if self.box_style == "abc":
            if box.shape[1] != 12:
                raise self.err(f"general triclinic box needs 4 numbers per line (frame {f0})", "BOX BOUNDS")
            b = box.reshape(nf, 3, 4)
            cells = b[:, :, :3].copy()
            origin = b[:, :, 3].copy()
        else:
            want = 9 if self.box_style == "triclinic" else 6
            if box.shape[1] != want:
                raise self.err(f"expected {want // 3} numbers per box line (frame {f0})", "BOX BOUNDS")
            b = box.reshape(nf, 3, want // 3)
            lo, hi = b[:, :, 0].copy(), b[:, :, 1].copy()
            if self.box_style == "triclinic":
                xy, xz, yz = b[:, 0, 2], b[:, 1, 2], b[:, 2, 2]
                zero = np.zeros(nf)
                lo[:, 0] -= np.min([zero, xy, xz, xy + xz], axis=0)
                hi[:, 0] -= np.max([zero, xy, xz, xy + xz], axis=0)
                lo[:, 1] -= np.minimum(zero, yz)
                hi[:, 1] -= np.maximum(zero, yz)
                cells[:, 1, 0] = xy
                cells[:, 2, 0] = xz
                cells[:, 2, 1] = yz
            L = hi - lo
            cells[:, 0, 0], cells[:, 1, 1], cells[:, 2, 2] = L[:, 0], L[:, 1], L[:, 2]
            origin = lo
        vol = np.abs(np.linalg.det(cells))
        if not (vol > 1e-6).all():
            k = int(np.flatnonzero(~(vol > 1e-6))[0])
            raise self.err(f"degenerate (zero-volume) box in frame {f0 + k}", "BOX BOUNDS")
        return cells, origin


# ----------------------------------------------------------------------------------------------
# ASE (extxyz and everything else ASE reads)

class _AseTrajectory:
    def __init__(self, reader: TrajectoryReader):
        self.r = reader
        self.path = reader.path

    def err(self, problem, field=None):
        return InputError(self.path, problem, field=field)

    def _iread(self):
        from ase.io import iread

        try:
            yield from iread(str(self.path), index=":")
        except InputError:
            raise
        except Exception as exc:  # ASE raises many types for malformed files
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise self.err(f"cannot read with ASE (truncated or malformed?): {msg}") from None

    def open(self):
        try:
            first = next(iter(self._iread()))
        except StopIteration:
            raise self.err("no frames") from None
        self._check_cell(first, 0)
        self.r.symbols = np.array(first.get_chemical_symbols())
        self.numbers = first.numbers.copy()
        self.r.masses = first.get_masses()
        self.r.coordinates = "ASE positions (unwrapped by minimum image)"

    def _check_cell(self, atoms, k):
        if atoms.cell.rank < 3 or abs(atoms.cell.volume) < 1e-6:
            raise self.err(f"missing cell (no three lattice vectors) in frame {k}", "cell")

    def chunks(self) -> Iterator[Chunk]:
        unwrap = _Unwrapper()
        pos, cells, k = [], [], 0
        n = len(self.r.symbols)
        for atoms in self._iread():
            if len(atoms) != n:
                raise self.err(f"atom count changes from {n} to {len(atoms)} at frame {k}", "positions")
            if not np.array_equal(atoms.numbers, self.numbers):
                raise self.err(f"species order changes at frame {k}", "symbols")
            self._check_cell(atoms, k)
            pos.append(atoms.positions)
            cells.append(np.array(atoms.cell))
            k += 1
            if len(pos) == self.r.chunk_frames:
                yield self._make(pos, cells, unwrap)
                pos, cells = [], []
        if pos:
            yield self._make(pos, cells, unwrap)

    def _make(self, pos, cells, unwrap):
        p = np.array(pos, dtype=np.float64)
        c = np.array(cells, dtype=np.float64)
        if not np.isfinite(p).all():
            return Chunk(positions=p, cells=c)  # the reader reports the frame and atom
        origin = np.zeros((p.shape[0], 3))
        return Chunk(positions=_cart(unwrap(_frac(p, c, origin)), c, origin), cells=c)
