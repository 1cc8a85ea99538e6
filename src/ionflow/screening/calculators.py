"""Energy-only evaluators for frozen-framework scans: one mobile ion moved, everything else fixed.

An evaluator is prepared for (framework Atoms, index m of the moving ion) and then returns the
TOTAL energy (eV) of the cell with ion m placed at each of many Cartesian positions:

* :class:`SevenNetEvaluator` (``sevennet`` or ``sevennet:MODEL[:MODAL]``): SevenNet with the
  force/stress head removed, run under ``torch.inference_mode``. Five message-passing layers give
  a receptive field larger than the cell, so every point costs one full-cell energy; batches of
  graphs help on GPU only.
* :class:`EnsembleEvaluator` (``ensemble:MANIFEST``): the members of a NequIP/Allegro ensemble
  manifest (``results/models/ensemble.json``, or one member's ``manifest.json``). Allegro is
  strictly local: E = sum_i E_i and E_i depends only on the edges i -> j with |r_ij| < r_max.
  Moving ion m changes E_i only for m itself and the atoms within r_max of it, so

      E(p) = E_frame - sum_{i in C(p)} E_i^frame + sum_{i in C(p) + m} E_i(p),

  where E_frame, E_i^frame are the per-atom energies of the cell without m (one full evaluation)
  and C(p) are the atoms with an image within r_max of p. Each grid point then needs only the
  edges centred on C(p) + m (a few dozen atoms), and many points are packed into one model call
  as disconnected graphs. Energy only: the force/stress output is removed (packaged models) and
  no autograd is used. The identity is checked at run time against the full periodic cell through
  nequip's own neighbour list (``locality_check``); if it fails (e.g. a message-passing NequIP
  model), the evaluator falls back to full-cell graphs (still batched, still energy-only).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ..errors import InputError, IonflowError, MissingToolError
from ..io.jsonio import read_json


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        raise MissingToolError("torch is not installed (pip install torch)") from None
    torch.set_num_threads(1)
    return torch


def _device(name: str):
    torch = _torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _float32_default:
    """SevenNet builds and runs in float32; nequip sets float64 as torch's default dtype."""

    def __enter__(self):
        torch = _torch()
        self.prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)

    def __exit__(self, *exc):
        _torch().set_default_dtype(self.prev)
        return False


def lattice_images(cell: np.ndarray, radius: float) -> np.ndarray:
    """Integer shifts n (k, 3) covering every lattice translation n @ cell shorter than radius."""
    cell = np.asarray(cell, float)
    vol = abs(np.linalg.det(cell))
    heights = vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    r = np.ceil(radius / heights).astype(int)
    return np.array(list(itertools.product(*(range(-k, k + 1) for k in r))), dtype=np.int64)


# --------------------------------------------------------------------------- SevenNet


class SevenNetEvaluator:
    """SevenNet (default 7net-0, weights in the sevenn wheel), energy only, full cell per point."""

    local = False

    def __init__(self, model: str = "7net-0", modal: str | None = None, device: str = "cpu",
                 batch_size: int = 1):
        try:
            import sevenn._keys as KEY
            from sevenn.calculator import SevenNetCalculator
        except ImportError:
            raise MissingToolError("sevenn is not installed (pip install sevenn)") from None
        torch = _torch()
        self.KEY = KEY
        self.device = _device(device)
        try:
            with _float32_default():
                calc = SevenNetCalculator(model, device=self.device, **({"modal": modal} if modal else {}))
        except Exception as exc:  # noqa: BLE001 - an unknown model name is a user error
            raise IonflowError(f"SevenNet model {model!r} could not be loaded: {exc}") from None
        self.cutoff = float(calc.cutoff)
        self.modal = calc.modal
        self.model = calc.model  # this calculator is ours: strip its force/stress head in place
        self.model.delete_module_by_key("force_output")
        self.model.eval()
        self.batch_size = max(1, int(batch_size))
        self.name = f"sevennet:{model}" + (f":{modal}" if modal else "")
        self.info = {"calculator": self.name, "cutoff_A": self.cutoff, "energy_only": True,
                     "device": str(self.device), "batch_size": self.batch_size, "locality": "none"}
        self._torch = torch
        self.atoms = None
        self.m = None

    def prepare(self, atoms, m: int) -> None:
        self.atoms = atoms.copy()
        self.m = int(m)

    def _graph(self, pos):
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        self.atoms.positions[self.m] = pos
        g = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(self.atoms, self.cutoff))
        if self.modal:
            g[self.KEY.DATA_MODALITY] = self.modal
        return g

    def energies(self, points: np.ndarray) -> dict:
        torch, KEY = self._torch, self.KEY
        pts = np.asarray(points, float).reshape(-1, 3)
        out = np.empty(len(pts))
        keep = self.atoms.positions[self.m].copy()
        try:
            with torch.inference_mode(), _float32_default():
                if self.batch_size == 1:
                    self.model.set_is_batch_data(False)
                    for k, p in enumerate(pts):
                        g = self._graph(p).to(self.device)
                        out[k] = float(self.model(g)[KEY.PRED_TOTAL_ENERGY])
                else:
                    from torch_geometric.data import Batch

                    self.model.set_is_batch_data(True)
                    for s in range(0, len(pts), self.batch_size):
                        gs = [self._graph(p) for p in pts[s:s + self.batch_size]]
                        b = Batch.from_data_list(gs).to(self.device)
                        e = self.model(b)[KEY.PRED_TOTAL_ENERGY]
                        out[s:s + len(gs)] = e.detach().cpu().numpy().reshape(-1)
        finally:
            self.atoms.positions[self.m] = keep
        return {"energy": out}


# --------------------------------------------------------------------------- NequIP / Allegro


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def read_manifest(path: str | Path) -> list[dict]:
    """Members of an ensemble manifest (or of a single member's manifest.json).

    Returns dicts with name, type_names, r_max and absolute 'package' / 'compiled_ase' paths
    (whichever exist).
    """
    path = Path(path)
    doc = read_json(path, missing="ensemble manifest not found")
    if isinstance(doc, dict) and "members" in doc:
        entries = doc["members"]
        if not isinstance(entries, list) or not entries:
            raise InputError(path, "must be a non-empty list", field="members")
        out = []
        for k, ent in enumerate(entries):
            if not isinstance(ent, dict) or "manifest" not in ent:
                raise InputError(path, "each member needs a 'manifest' path", field=f"members[{k}]")
            # ensemble.json (ionflow metrics-table) gives 'manifest_rel' (relative to itself) and
            # 'manifest' (relative to the workflow directory); accept either, or an absolute path
            cands = ([_resolve(path.parent, ent["manifest_rel"])] if ent.get("manifest_rel") else []) + [
                _resolve(path.parent, ent["manifest"]), Path(ent["manifest"])]
            sub = next((c for c in cands if c.is_file()), cands[0])
            mem = read_manifest(sub)[0]
            mem["name"] = ent.get("name", mem["name"])
            out.append(mem)
        return out
    if not isinstance(doc, dict):
        raise InputError(path, "expected a JSON object")
    base = path.parent
    pkg = doc.get("package")
    comp = (doc.get("compiled") or {}).get("ase") if isinstance(doc.get("compiled"), dict) else None
    mem = {"name": str(doc.get("member", path.parent.name)), "manifest": str(path),
           "type_names": doc.get("type_names"), "r_max": doc.get("r_max"),
           "package": str(_resolve(base, pkg)) if pkg else None,
           "compiled_ase": str(_resolve(base, comp)) if comp else None}
    if not (mem["package"] and Path(mem["package"]).is_file()) and not (
            mem["compiled_ase"] and Path(mem["compiled_ase"]).is_file()):
        raise InputError(path, "neither 'package' (.nequip.zip) nor 'compiled.ase' (.nequip.pt2) "
                         "points to an existing file", field="package")
    return [mem]


class _Member:
    """One NequIP-framework model: energy-only callable on nequip data dicts."""

    def __init__(self, name: str, model, type_names: list[str], r_max: float, source: str,
                 dtype, device):
        self.name = name
        self.model = model
        self.type_names = list(type_names)
        self.r_max = float(r_max)
        self.source = source
        self.dtype = dtype
        self.device = device
        self.is_allegro = any("Allegro" in type(mod).__name__ for mod in getattr(model, "modules", lambda: [])())
        md = getattr(model, "metadata", {}) or {}
        self.model_dtype = str(md.get("model_dtype", "float32"))

    @classmethod
    def load(cls, mem: dict, device):
        torch = _torch()
        from nequip.nn import graph_model
        from nequip.utils.global_state import set_global_state

        set_global_state()
        if mem.get("package") and Path(mem["package"]).is_file():
            from nequip.model.modify_utils import get_all_modifiers, modify
            from nequip.model.saved_models.load_utils import load_saved_model

            model = load_saved_model(mem["package"])
            if "disable_ForceStressOutput" in get_all_modifiers(model):
                model = modify(model, [{"modifier": "disable_ForceStressOutput"}])
            model.eval().to(device)
            md = model.metadata
            r_max = float(md[graph_model.R_MAX_KEY])
            types = md[graph_model.TYPE_NAMES_KEY].split(" ")
            source = mem["package"]
        else:
            from nequip.model.inference_models import load_compiled_model
            from nequip.scripts._compile_utils import AOTI_ASE_TARGET, COMPILE_TARGET_DICT

            tgt = COMPILE_TARGET_DICT[AOTI_ASE_TARGET]
            model, md = load_compiled_model(mem["compiled_ase"], device, list(tgt["input"]),
                                            list(tgt["output"]))
            r_max = float(md[graph_model.R_MAX_KEY])
            types = list(md[graph_model.TYPE_NAMES_KEY])
            source = mem["compiled_ase"]
        out = cls(mem["name"], model, types, r_max, source, torch.get_default_dtype(), device)
        out.model_dtype = str(md.get("model_dtype", out.model_dtype))
        return out

    def per_atom(self, pos, types, edge_index, shifts, cell) -> np.ndarray:
        torch = _torch()
        from nequip.data import AtomicDataDict as K

        data = {
            K.POSITIONS_KEY: torch.as_tensor(pos, dtype=self.dtype, device=self.device),
            K.ATOM_TYPE_KEY: torch.as_tensor(types, dtype=torch.int64, device=self.device),
            K.EDGE_INDEX_KEY: torch.as_tensor(edge_index, dtype=torch.int64, device=self.device),
            K.EDGE_CELL_SHIFT_KEY: torch.as_tensor(shifts, dtype=self.dtype, device=self.device),
            K.CELL_KEY: torch.as_tensor(np.asarray(cell).reshape(1, 3, 3), dtype=self.dtype,
                                        device=self.device),
        }
        with torch.inference_mode():
            out = self.model(data)
        return out[K.PER_ATOM_ENERGY_KEY].detach().cpu().numpy().reshape(-1).astype(float)

    def reference_energy(self, atoms) -> float:
        """Total energy through nequip's own ASE path (its neighbour list): the ground truth."""
        from nequip.integrations.ase import NequIPCalculator
        from nequip.integrations.utils import basic_transforms

        if self.source.endswith(".pt2"):
            calc = NequIPCalculator.from_compiled_model(self.source, device=self.device,
                                                        chemical_species_to_atom_type_map=True)
        else:
            tr = basic_transforms({}, self.r_max, self.type_names, {t: t for t in self.type_names})
            calc = NequIPCalculator(self.model, device=self.device, transforms=tr)
        a = atoms.copy()
        a.calc = calc
        calc.calculate(a, properties=["energy"])
        if "energies" in calc.results:
            return float(np.sum(calc.results["energies"]))
        return float(calc.results["energy"])


class _LocalEngine:
    """Graph bookkeeping for one member on one (framework, m): batched cut-out or full graphs."""

    def __init__(self, member: _Member, atoms, m: int, batch_size: int):
        from ase.neighborlist import neighbor_list
        from scipy.spatial import cKDTree

        self.mem = member
        self.m = int(m)
        self.batch_size = batch_size
        self.cell = np.array(atoms.cell)
        # work with positions wrapped into the cell (energies are periodic)
        atoms = atoms.copy()
        atoms.wrap()
        self.pos = atoms.positions.copy()
        self.n = len(atoms)
        sym = atoms.get_chemical_symbols()
        tmap = {t: k for k, t in enumerate(member.type_names)}
        missing = sorted(set(sym) - set(tmap))
        if missing:
            raise IonflowError(f"model {member.name} ({member.source}) has no type for {missing}; "
                               f"its types are {member.type_names}")
        self.types = np.array([tmap[s] for s in sym], dtype=np.int64)
        rc = member.r_max
        i, j, S = neighbor_list("ijS", atoms, rc)
        keep = (i != m) & (j != m)
        i, j, S = i[keep], j[keep], S[keep]
        o = np.argsort(i, kind="stable")
        self.fw_i, self.fw_j, self.fw_S = i[o].astype(np.int64), j[o].astype(np.int64), S[o].astype(float)
        self.fw_ptr = np.searchsorted(self.fw_i, np.arange(self.n + 1))
        shifts = lattice_images(self.cell, rc)
        # m's own periodic images within r_max (small cells only)
        sh = shifts[np.any(shifts != 0, axis=1)]
        self.self_S = sh[np.linalg.norm(sh @ self.cell, axis=1) < rc].astype(float)
        # k-d tree over the images of the framework atoms that can lie within r_max of a point
        # inside the cell: shifts up to ceil(r_max / cell height) along each axis
        others = np.flatnonzero(np.arange(self.n) != m)
        img = (self.pos[others][None, :, :] + (shifts @ self.cell)[:, None, :]).reshape(-1, 3)
        self.img_atom = np.tile(others, len(shifts))
        self.img_S = np.repeat(shifts, len(others), axis=0).astype(float)
        self.tree = cKDTree(img)
        # per-atom energies of the framework without m (m isolated: its node has no edges)
        e0 = member.per_atom(self.pos, self.types, np.stack([self.fw_i, self.fw_j]), self.fw_S, self.cell)
        e0[m] = 0.0
        self.e0 = e0
        self.e_frame = float(e0.sum())

    def _pairs(self, pts):
        """(point, framework atom, shift n) for every image within r_max of each point."""
        from scipy.spatial import cKDTree

        sdm = cKDTree(pts).sparse_distance_matrix(self.tree, self.mem.r_max, output_type="ndarray")
        b, k = sdm["i"].astype(np.int64), sdm["j"].astype(np.int64)
        return b, self.img_atom[k], self.img_S[k]

    def wrap(self, points: np.ndarray) -> np.ndarray:
        frac = np.asarray(points, float).reshape(-1, 3) @ np.linalg.inv(self.cell)
        return (frac - np.floor(frac)) @ self.cell

    def energies(self, points: np.ndarray, local: bool = True) -> np.ndarray:
        pts = self.wrap(points)
        out = np.empty(len(pts))
        for s in range(0, len(pts), self.batch_size):
            out[s:s + self.batch_size] = self._batch(pts[s:s + self.batch_size], local)
        return out

    def _batch(self, pts: np.ndarray, local: bool) -> np.ndarray:
        n, m, B = self.n, self.m, len(pts)
        b, j, S = self._pairs(pts)
        if local:
            # core atoms of each point: unique (point, atom)
            key = np.unique(b * n + j)
            cb, cj = key // n, key % n
        else:
            cb = np.repeat(np.arange(B), n - 1)
            cj = np.tile(np.flatnonzero(np.arange(n) != m), B)
        # framework edges centred on the core atoms (CSR gather)
        start, cnt = self.fw_ptr[cj], self.fw_ptr[cj + 1] - self.fw_ptr[cj]
        tot = int(cnt.sum())
        eidx = np.repeat(start - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt) + np.arange(tot)
        eb = np.repeat(cb, cnt)
        src = [eb * n + self.fw_i[eidx], b * n + j, b * n + m]
        dst = [eb * n + self.fw_j[eidx], b * n + m, b * n + j]
        shf = [self.fw_S[eidx], -S, S]
        if len(self.self_S):
            bs = np.repeat(np.arange(B), len(self.self_S))
            src.append(bs * n + m)
            dst.append(bs * n + m)
            shf.append(np.tile(self.self_S, (B, 1)))
        pos = np.repeat(self.pos[None], B, axis=0)
        pos[:, m] = pts
        ea = self.mem.per_atom(pos.reshape(-1, 3), np.tile(self.types, B),
                               np.stack([np.concatenate(src), np.concatenate(dst)]),
                               np.concatenate(shf), self.cell).reshape(B, n)
        if not local:
            return ea.sum(axis=1)
        e = np.full(B, self.e_frame) + ea[:, m]
        np.add.at(e, cb, ea[cb, cj] - self.e0[cj])
        return e


class EnsembleEvaluator:
    """Energies from every member of a NequIP/Allegro ensemble; mean and spread per point."""

    def __init__(self, manifest: str | None = None, device: str = "cpu", batch_size: int = 8,
                 locality: str = "auto", members: list | None = None):
        self.device = _device(device)
        if members is None:
            specs = read_manifest(manifest)
            members = [_Member.load(s, self.device) for s in specs]
        self.members = members
        self.batch_size = max(1, int(batch_size))
        self.locality = locality
        self.name = f"ensemble:{manifest}" if manifest else "ensemble:in-memory"
        self.local = locality != "off"
        self.engines = None
        self.check = None
        self.info = {"calculator": self.name, "members": [
            {"name": mb.name, "source": mb.source, "r_max": mb.r_max, "type_names": mb.type_names,
             "allegro": mb.is_allegro} for mb in members],
            "energy_only": True, "device": str(self.device), "batch_size": self.batch_size}

    def prepare(self, atoms, m: int, check_points: np.ndarray | None = None) -> None:
        """Precompute framework energies; verify the local identity at ``check_points``."""
        self.engines = [_LocalEngine(mb, atoms, m, self.batch_size) for mb in self.members]
        self.atoms = atoms
        self.m = int(m)
        if self.locality == "off":
            self.local = False
            self.info["locality"] = "off (full-cell graphs)"
            return
        pts = np.asarray(check_points if check_points is not None else atoms.positions[m:m + 1], float)
        worst = 0.0
        tol = 0.0
        for mb, eng in zip(self.members, self.engines):
            loc = eng.energies(pts, local=True)
            for p, el in zip(pts, loc):
                a = atoms.copy()
                a.positions[m] = p
                ref = mb.reference_energy(a)
                worst = max(worst, abs(el - ref))
                # round-off of a difference of ~N per-atom sums: eps * sum|E_i| / sqrt(N), x10
                eps = 1.2e-7 if "float32" in str(mb.model_dtype) else 2.3e-16
                tol = max(tol, 1e-6, 10 * eps * float(np.abs(eng.e0).sum()) / np.sqrt(eng.n))
        ok = bool(worst <= tol)
        self.check = {"points": int(len(pts)), "max_abs_diff_eV": float(worst),
                      "tolerance_eV": float(tol), "passed": ok}
        if self.locality == "on" and not ok:
            raise IonflowError(f"locality check failed: cut-out vs full-cell energy differ by "
                               f"{worst:.3g} eV (> {tol:.3g}); use --locality off")
        self.local = ok
        self.info["locality"] = "cut-out (r_max)" if ok else "full-cell graphs (locality check failed)"
        self.info["locality_check"] = self.check

    def energies(self, points: np.ndarray) -> dict:
        per = np.array([eng.energies(points, local=self.local) for eng in self.engines])
        return {"energy": per.mean(axis=0), "members": per}


# --------------------------------------------------------------------------- factory


def make_evaluator(spec: str, device: str = "cpu", batch_size: int | None = None,
                   locality: str = "auto"):
    """Evaluator from a --calculator string: sevennet[:MODEL[:MODAL]] or ensemble:MANIFEST."""
    kind, _, rest = spec.partition(":")
    if kind == "sevennet":
        model, _, modal = rest.partition(":")
        return SevenNetEvaluator(model or "7net-0", modal or None, device=device,
                                 batch_size=batch_size or 1)
    if kind == "ensemble":
        if not rest:
            raise InputError(spec, "ensemble needs a manifest path: ensemble:results/models/ensemble.json",
                             field="--calculator")
        return EnsembleEvaluator(rest, device=device, batch_size=batch_size or 8, locality=locality)
    raise InputError(spec, "unknown calculator (use 'sevennet[:MODEL]' or 'ensemble:MANIFEST')",
                     field="--calculator")

