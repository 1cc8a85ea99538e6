"""Tests of ``ionflow pes-scan`` and its evaluators (ionflow.screening.scan / .calculators).

The cut-out (locality) evaluation is checked against nequip's own full periodic evaluation with
randomly initialised float64 Allegro models (strictly local: must agree to round-off) and a
message-passing NequIP model (not local within r_max: the run-time check must catch it and fall
back to full cells). Real engines: a SevenNet-0 scan and a trained, packaged Allegro ensemble
read through its manifest (slow).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ionflow import structures
from ionflow.cli import main
from ionflow.screening import descriptors as D
from ionflow.screening import scan as S

from conftest import require_module

TYPES = ["Li", "P", "O"]


def _allegro(seed=1, dtype="float64", r_max=4.0, layers=2):
    require_module("allegro", "nequip-allegro")
    from allegro.model import AllegroModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    return AllegroModel(
        seed=seed, model_dtype=dtype, type_names=TYPES, r_max=r_max,
        radial_chemical_embed={"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 8,
                               "bessel_trainable": False, "polynomial_cutoff_p": 6},
        radial_chemical_embed_dim=8, scalar_embed_mlp_hidden_layers_depth=1,
        scalar_embed_mlp_hidden_layers_width=16, l_max=1, parity=False, num_layers=layers,
        num_scalar_features=8, num_tensor_features=4, allegro_mlp_hidden_layers_depth=1,
        allegro_mlp_hidden_layers_width=16, readout_mlp_hidden_layers_depth=1,
        readout_mlp_hidden_layers_width=8, avg_num_neighbors=20.0,
        per_type_energy_shifts={"Li": -2.0, "P": -5.0, "O": -4.0}, per_type_energy_scales=0.5,
        do_derivatives=False).eval()


def _nequip_mp(seed=3, r_max=3.0):
    require_module("nequip", "nequip")
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    return NequIPGNNModel(seed=seed, model_dtype="float64", type_names=TYPES, r_max=r_max,
                          num_layers=2, l_max=1, parity=False, num_features=4, radial_mlp_width=8,
                          avg_num_neighbors=10.0, per_type_energy_shifts={"Li": -2.0, "P": -5.0, "O": -4.0},
                          per_type_energy_scales=0.5, do_derivatives=False).eval()


def _member(model, name="m", r_max=4.0):
    import torch

    from ionflow.screening.calculators import _Member

    mb = _Member(name, model, TYPES, r_max, "in-memory", torch.get_default_dtype(), torch.device("cpu"))
    mb.model_dtype = "float64"
    return mb


# --------------------------------------------------------------------------- geometry


def test_grid_commensurate_with_symmetry_and_supercell():
    at = structures.gamma_li3po4()
    sym = S.symmetry(at)
    assert sym["spacegroup"] == "Pnma (62)"
    dens = S.translation_denominators(sym["translations"])
    assert dens.tolist() == [2, 2, 2]
    n, reps = S.choose_grid(at, 0.25, dens, 8.0)
    # ceil(10.4612/0.25) = 42, ceil(6.1113/0.25) = 25 -> 26 (even), ceil(4.9208/0.25) = 20
    assert n.tolist() == [42, 26, 20]
    assert reps.tolist() == [1, 2, 2]  # 10.46, 12.22, 9.84 A >= 8 A
    n0, reps0 = S.choose_grid(at, 0.25, dens, 0.0)
    assert reps0.tolist() == [1, 1, 1]
    # a skewed cell: the perpendicular width, not the length, decides
    from ase import Atoms

    sk = Atoms("Li", cell=[[5, 0, 0], [3, 4, 0], [0, 0, 5]], pbc=True)  # lengths 5, widths 4, 4, 5
    assert S.choose_grid(sk, 1.0, np.ones(3, int), 4.5)[1].tolist() == [2, 2, 1]


def test_symmetry_index_maps_exact_on_commensurate_grid():
    at = structures.gamma_li3po4()
    sym = S.symmetry(at)
    n, _ = S.choose_grid(at, 1.0, S.translation_denominators(sym["translations"]), 0.0)
    maps, exact = D.symmetry_index_maps(tuple(n), sym["rotations"], sym["translations"])
    assert exact and maps.shape == (8, int(np.prod(n)))
    for m in maps:  # every operation permutes the grid
        assert np.array_equal(np.sort(m), np.arange(m.size))


def test_exclusion_mask_matches_brute_force():
    at = structures.beta_li3po4()
    cell = np.array(at.cell)
    rng = np.random.default_rng(4)
    frac = rng.random((400, 3))
    r = 1.6
    mask = S.exclusion_mask(cell, frac, at.positions[1:], r)
    # brute force: all 5x5x5 images of every frame atom
    img = np.array([(i, j, k) for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)]) @ cell
    d = np.linalg.norm((frac @ cell)[:, None, None, :] - at.positions[1:][None, :, None, :]
                       - img[None, None, :, :], axis=-1).min(axis=(1, 2))
    np.testing.assert_array_equal(mask, d < r)
    assert 0 < mask.mean() < 1


def test_select_ions_one_per_orbit():
    at = structures.gamma_li3po4()
    sym = S.symmetry(at)
    ions, orbit, complete = S.select_ions(at, "Li", sym, False, None, None, 0)
    assert len(ions) == 2 and sorted(orbit.tolist()) == [4, 8] and complete
    assert all(at[i].symbol == "Li" for i in ions)
    ions, orbit, complete = S.select_ions(at, "Li", sym, True, None, None, 0)
    assert len(ions) == 12 and complete
    ions1, _, c1 = S.select_ions(at, "Li", sym, True, None, 3, 7)
    ions2, _, _ = S.select_ions(at, "Li", sym, True, None, 3, 7)
    assert len(ions1) == 3 and not c1 and np.array_equal(ions1, ions2)  # seeded
    from ionflow.errors import InputError

    with pytest.raises(InputError, match="Na"):
        S.select_ions(at, "Na", sym, False, None, None, 0)
    with pytest.raises(InputError, match="not Li"):
        S.select_ions(at, "Li", sym, False, [20], None, 0)


# --------------------------------------------------------------------------- locality


@pytest.mark.parametrize("reps", [(1, 1, 1), (1, 2, 2)])
def test_cutout_energy_equals_full_periodic_cell(reps):
    """Allegro (random weights, float64): the cut-out identity is exact, also in the raw
    32-atom cell whose widths (4.9 A) are below 2 r_max, where m sees its own images."""
    from ionflow.screening.calculators import EnsembleEvaluator

    at = structures.gamma_li3po4().repeat(reps)
    mb = _member(_allegro(r_max=4.0 if reps == (1, 1, 1) else 5.0),
                 r_max=4.0 if reps == (1, 1, 1) else 5.0)
    ev = EnsembleEvaluator(members=[mb], batch_size=3)
    rng = np.random.default_rng(0)
    pts = at.positions[0] + rng.normal(scale=1.5, size=(7, 3))
    pts[-1] += at.cell[2] * 3  # far outside the cell: wrapped
    ev.prepare(at, 0, check_points=pts[:2])
    assert ev.local and ev.check["passed"]
    loc = ev.engines[0].energies(pts, local=True)
    full = ev.engines[0].energies(pts, local=False)
    ref = []
    for p in pts:
        a = at.copy()
        a.positions[0] = p
        ref.append(mb.reference_energy(a))
    np.testing.assert_allclose(loc, ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(full, ref, rtol=0, atol=1e-9)
    assert np.ptp(ref) > 1e-3  # the test points really differ


def test_message_passing_model_fails_locality_check_and_falls_back():
    from ionflow.errors import IonflowError
    from ionflow.screening.calculators import EnsembleEvaluator

    at = structures.gamma_li3po4()
    mb = _member(_nequip_mp(r_max=3.0), r_max=3.0)
    rng = np.random.default_rng(1)
    pts = at.positions[0] + rng.normal(scale=1.0, size=(3, 3))
    ev = EnsembleEvaluator(members=[mb], batch_size=2)
    ev.prepare(at, 0, check_points=pts)
    assert not ev.check["passed"] and not ev.local
    assert "full-cell" in ev.info["locality"]
    e = ev.energies(pts)["energy"]
    ref = []
    for p in pts:
        a = at.copy()
        a.positions[0] = p
        ref.append(mb.reference_energy(a))
    np.testing.assert_allclose(e, ref, rtol=0, atol=1e-9)
    ev_on = EnsembleEvaluator(members=[mb], locality="on")
    with pytest.raises(IonflowError, match="locality check failed"):
        ev_on.prepare(at, 0, check_points=pts)


# --------------------------------------------------------------------------- the scan contract


@pytest.fixture(scope="module")
def ensemble_scan():
    from ionflow.screening.calculators import EnsembleEvaluator

    at = structures.beta_li3po4()
    members = [_member(_allegro(seed=s), name=f"m{s}") for s in (1, 2)]
    ev = EnsembleEvaluator(members=members, batch_size=16)
    out = S.scan_structure(at, ev, grid_step=1.0, min_length=0.0, exclusion_radius=1.2,
                           spread_threshold=0.5, name="beta", seed=3)
    return at, members, out


def test_scan_contract_and_exclusions(ensemble_scan, tmp_path):
    at, members, out = ensemble_scan
    # beta-Li3PO4 (Pmn2_1): Li on 4b and 2a -> two inequivalent ions
    assert out["energy"].shape == (2, 8, 6, 6)
    assert out["start_index"].shape == (2, 3)
    assert out["cell"].shape == (3, 3) and np.allclose(out["cell"], at.cell)
    assert out["cell_kind"] == "raw" and out["supercell"].tolist() == [1, 1, 1]
    assert out["species"].shape == (2, 15) and out["positions"].shape == (2, 15, 3)
    assert sorted(out["orbit_size"].tolist()) == [2, 4]
    shape = out["energy"].shape[1:]
    frac = np.stack(np.meshgrid(*(np.arange(n) / n for n in shape), indexing="ij"), -1).reshape(-1, 3)
    for k, m in enumerate(out["mobile_index"]):
        e = out["energy"][k]
        # NaN exactly where a frozen atom is closer than the exclusion radius
        excl = S.exclusion_mask(out["cell"], frac, out["positions"][k], 1.2).reshape(shape)
        np.testing.assert_array_equal(np.isnan(e), excl)
        # the moving ion is not among the frozen atoms
        assert np.linalg.norm(out["positions"][k] - out["structure_positions"][m], axis=1).min() > 1.0
        # start = argmin; ensemble mean and spread consistent with the members
        assert tuple(out["start_index"][k]) == np.unravel_index(np.nanargmin(e), shape)
        mem = out["energy_members"][:, k]
        np.testing.assert_allclose(e, mem.mean(axis=0), rtol=0, atol=1e-12, equal_nan=True)
        rel = mem - mem[(slice(None),) + tuple(out["start_index"][k])][:, None, None, None]
        np.testing.assert_allclose(out["energy_std"][k], rel.std(axis=0), atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(out["unreliable"][k], np.nan_to_num(rel.std(axis=0)) > 0.5)
        # base energy = mean of the members' reference energies of the unperturbed structure
        ref = np.mean([mb.reference_energy(at) for mb in members])
        assert out["base_energy"][k] == pytest.approx(ref, abs=1e-9)
    info = json.loads(str(out["calculator_info"]))
    assert info["locality"].startswith("cut-out")
    assert [c["passed"] for c in info["locality_checks"]] == [True, True]
    assert out["member_names"].tolist() == ["m1", "m2"]
    # round trip through the file contract and the descriptors
    p = tmp_path / "scan.npz"
    np.savez_compressed(p, **out)
    scan = D.load_scan(p)
    d, _ = D.compute(scan)
    assert d["n_ions"] == 2 and d["symmetry_expanded"] and d["symmetry_mapping_exact"]
    assert "unreliable_fraction_scan" in d and "unreliable_fraction_connected" in d["ions"][0]
    assert d["mpe_eV"] == min(i["mpe_eV"] for i in d["ions"])


def test_single_ion_scan_has_no_ion_axis():
    from ionflow.screening.calculators import EnsembleEvaluator

    at = structures.beta_li3po4()
    ev = EnsembleEvaluator(members=[_member(_allegro())], batch_size=8)
    out = S.scan_structure(at, ev, grid_step=1.5, min_length=0.0, ions=[0], start="site")
    assert out["energy"].ndim == 3 and out["start_index"].shape == (3,)
    assert out["species"].shape == (15,) and out["positions"].shape == (15, 3)
    assert out["energy_std"].shape == out["energy"].shape
    assert tuple(out["start_index"]) == tuple(out["site_index"][0])
    assert not bool(out["symmetry_expand"])


def test_interrupted_scan_resumes_from_checkpoint(tmp_path, capsys):
    """An evaluator that dies after a few chunks leaves them in the checkpoint; the rerun reuses
    them and gives exactly the uninterrupted result; the checkpoint is then removed."""
    from ionflow.screening.calculators import EnsembleEvaluator

    at = structures.beta_li3po4()
    mb = _member(_allegro(seed=5))
    kw = dict(grid_step=1.5, min_length=0.0, ions=[0], chunk=8, calculator_key="x")
    ref = S.scan_structure(at, EnsembleEvaluator(members=[mb], batch_size=8), **kw)

    class Dying(EnsembleEvaluator):
        calls = 0

        def energies(self, points):
            Dying.calls += 1
            if Dying.calls == 4:
                raise KeyboardInterrupt
            return super().energies(points)

    ck = tmp_path / ".scan.npz.partial.npz"
    with pytest.raises(KeyboardInterrupt):
        S.scan_structure(at, Dying(members=[mb], batch_size=8), checkpoint=ck, **kw)
    assert ck.exists()
    kept = S.Checkpoint(ck, "wrong key")
    assert kept.restored == 0  # other inputs: not reused
    capsys.readouterr()
    out = S.scan_structure(at, EnsembleEvaluator(members=[mb], batch_size=8), checkpoint=ck, **kw)
    assert "24 points restored" in capsys.readouterr().out  # 3 chunks of 8
    np.testing.assert_array_equal(out["energy"], ref["energy"])
    assert not ck.exists()


@pytest.mark.parametrize("argv, msg", [
    (["builtin:nope"], "unknown builtin"),
    (["/no/such/file.cif"], "not found"),
    (["builtin:beta-Li3PO4", "--calculator", "magic"], "unknown calculator"),
    (["builtin:beta-Li3PO4", "--calculator", "ensemble:/no/ensemble.json"], "manifest not found"),
    (["builtin:beta-Li3PO4", "--grid-step", "0"], "must be > 0"),
])
def test_cli_user_errors(tmp_path, capsys, argv, msg):
    out = tmp_path / "scan.npz"
    rc = main(["pes-scan", *argv, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and msg in err[0], err
    assert not out.exists()


def test_manifest_errors(tmp_path):
    from ionflow.errors import InputError
    from ionflow.screening.calculators import read_manifest

    p = tmp_path / "ensemble.json"
    p.write_text(json.dumps({"members": []}))
    with pytest.raises(InputError, match=r"\[members\]"):
        read_manifest(p)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.json").write_text(json.dumps({"member": "a", "package": "a.nequip.zip"}))
    p.write_text(json.dumps({"members": [{"name": "a", "manifest": "a/manifest.json"}]}))
    with pytest.raises(InputError, match="neither"):
        read_manifest(p)


# --------------------------------------------------------------------------- real engines (slow)


@pytest.mark.slow
def test_sevennet_scan_cli(tmp_path):
    """Real SevenNet-0 scan of one Li of beta-Li3PO4 (raw 16-atom cell, 1 A grid)."""
    require_module("sevenn", "sevenn")
    scan, desc = tmp_path / "scan.npz", tmp_path / "d.json"
    assert main(["pes-scan", "builtin:beta-Li3PO4", "--calculator", "sevennet", "--grid-step", "1.0",
                 "--min-length", "0", "--ions", "0", "-o", str(scan)]) == 0
    z = np.load(scan)
    assert z["energy"].shape == (8, 6, 6) and str(z["calculator"]) == "sevennet:7net-0"
    fin = np.isfinite(z["energy"])
    assert 20 < fin.sum() < fin.size
    # energy-only model == the standard SevenNet calculator (with forces) at the ion's own site
    from sevenn.calculator import SevenNetCalculator

    from ionflow.screening.calculators import _float32_default

    at = structures.beta_li3po4()
    with _float32_default():  # other tests in this process may have set torch's default to float64
        at.calc = SevenNetCalculator("7net-0", device="cpu")
        e_ref = at.get_potential_energy()
    assert float(z["base_energy"][0]) == pytest.approx(e_ref, abs=1e-4)
    prov = json.loads(str(z["provenance_json"]))
    assert prov["stage"] == "pes-scan" and prov["engine"]["energy_only"]
    assert main(["pes-descriptors", str(scan), "-o", str(desc)]) == 0
    d = json.loads(desc.read_text())
    assert d["calculator"] == "sevennet:7net-0" and 0 <= d["xi"] <= 1


_NEQUIP_CFG = """
run: [train]
seed: 7
cutoff_radius: 4.0
model_type_names: [Li, P, O]
data:
  _target_: nequip.data.datamodule.ASEDataModule
  seed: 7
  split_dataset: {{file_path: {data}, train: 8, val: 2}}
  transforms:
    - _target_: nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper
      model_type_names: ${{model_type_names}}
    - _target_: nequip.data.transforms.NeighborListTransform
      r_max: ${{cutoff_radius}}
  train_dataloader: {{_target_: torch.utils.data.DataLoader, batch_size: 2, shuffle: true}}
  val_dataloader: {{_target_: torch.utils.data.DataLoader, batch_size: 2}}
  stats_manager:
    _target_: nequip.data.CommonDataStatisticsManager
    type_names: ${{model_type_names}}
    dataloader_kwargs: {{batch_size: 4}}
trainer:
  _target_: lightning.Trainer
  accelerator: cpu
  devices: 1
  max_epochs: 1
  enable_progress_bar: false
  logger: false
  callbacks:
    - _target_: lightning.pytorch.callbacks.ModelCheckpoint
      dirpath: ${{hydra:runtime.output_dir}}
      filename: best
      save_last: true
training_module:
  _target_: nequip.train.EMALightningModule
  ema_decay: 0.9
  loss: {{_target_: nequip.train.EnergyForceLoss, per_atom_energy: true, coeffs: {{total_energy: 1.0, forces: 1.0}}}}
  val_metrics: {{_target_: nequip.train.EnergyForceMetrics, coeffs: {{per_atom_energy_mae: 1.0, forces_mae: 1.0}}}}
  optimizer: {{_target_: torch.optim.Adam, lr: 0.01}}
  model:
    _target_: allegro.model.AllegroModel
    seed: {seed}
    model_dtype: float32
    type_names: ${{model_type_names}}
    r_max: ${{cutoff_radius}}
    radial_chemical_embed:
      _target_: allegro.nn.TwoBodyBesselScalarEmbed
      num_bessels: 8
      bessel_trainable: false
      polynomial_cutoff_p: 6
    radial_chemical_embed_dim: 8
    scalar_embed_mlp_hidden_layers_depth: 1
    scalar_embed_mlp_hidden_layers_width: 16
    l_max: 1
    parity: false
    num_layers: 1
    num_scalar_features: 8
    num_tensor_features: 4
    allegro_mlp_hidden_layers_depth: 1
    allegro_mlp_hidden_layers_width: 16
    readout_mlp_hidden_layers_depth: 1
    readout_mlp_hidden_layers_width: 8
    avg_num_neighbors: ${{training_data_stats:num_neighbors_mean}}
    per_type_energy_shifts: ${{training_data_stats:per_atom_energy_mean}}
    per_type_energy_scales: ${{training_data_stats:forces_rms}}
"""


@pytest.fixture(scope="module")
def trained_ensemble(tmp_path_factory):
    """Two 1-epoch Allegro members (nequip-train + nequip-package) and their manifests."""
    require_module("allegro", "nequip-allegro")
    import shutil

    from ase.calculators.lj import LennardJones
    from ase.io import write

    root = tmp_path_factory.mktemp("ens")
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(10):
        a = structures.beta_li3po4()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.calc = LennardJones(sigma=1.8, epsilon=0.05, rc=4.0, smooth=True)
        a.get_potential_energy()
        a.get_forces()
        frames.append(a)
    write(root / "data.extxyz", frames)
    bindir = shutil.which("nequip-train", path=str(__import__("pathlib").Path(sys.executable).parent))
    members = []
    for seed in (1, 2):
        d = root / f"m{seed}"
        d.mkdir()
        (d / "cfg.yaml").write_text(_NEQUIP_CFG.format(data=root / "data.extxyz", seed=seed))
        subprocess.run([bindir, "-cp", str(d), "-cn", "cfg.yaml", f"hydra.run.dir={d / 'run'}"],
                       check=True, capture_output=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        subprocess.run([str(__import__("pathlib").Path(bindir).parent / "nequip-package"), "build",
                        str(d / "run" / "best.ckpt"), str(d / f"m{seed}.nequip.zip")],
                       check=True, capture_output=True)
        (d / "manifest.json").write_text(json.dumps({
            "member": f"m{seed}", "type_names": TYPES, "r_max": 4.0,
            "package": f"m{seed}.nequip.zip", "compiled": {}}))
        members.append({"name": f"m{seed}", "manifest": f"m{seed}/manifest.json"})
    (root / "ensemble.json").write_text(json.dumps({"members": members}))
    return root / "ensemble.json"


@pytest.mark.slow
def test_ensemble_manifest_scan_cli_with_workers(trained_ensemble, tmp_path):
    """Packaged members loaded through the manifest; energy-only cut-out evaluation; the same
    numbers with two worker processes; spread/unreliable stored; descriptors run."""
    s1, s2 = tmp_path / "s1.npz", tmp_path / "s2.npz"
    common = ["builtin:beta-Li3PO4", "--calculator", f"ensemble:{trained_ensemble}", "--grid-step", "1.5",
              "--min-length", "8", "--ions", "0", "--spread-threshold", "0.05"]
    assert main(["pes-scan", *common, "-o", str(s1)]) == 0
    assert main(["pes-scan", *common, "--workers", "2", "-o", str(s2)]) == 0
    z1, z2 = np.load(s1), np.load(s2)
    assert str(z1["cell_kind"]) == "supercell" and z1["supercell"].tolist() == [2, 2, 2]
    assert z1["energy"].shape == (12, 8, 8)
    np.testing.assert_allclose(z1["energy"], z2["energy"], rtol=0, atol=1e-6, equal_nan=True)
    info = json.loads(str(z1["calculator_info"]))
    assert info["locality_checks"][0]["passed"] and [m["name"] for m in info["members"]] == ["m1", "m2"]
    assert z1["energy_members"].shape == (2, 12, 8, 8)
    assert np.nanmax(z1["energy_std"]) > 0
    # spot check against nequip's own ASE calculator on the full supercell
    from nequip.integrations.ase import NequIPCalculator

    at = structures.beta_li3po4().repeat((2, 2, 2))
    k = np.argwhere(np.isfinite(z1["energy"]))[5]
    at.positions[0] = (k / np.array(z1["energy"].shape)) @ np.array(at.cell)
    es = []
    for m in ("m1", "m2"):
        calc = NequIPCalculator._from_saved_model(str(trained_ensemble.parent / m / f"{m}.nequip.zip"),
                                                  chemical_species_to_atom_type_map=True)
        at.calc = calc
        es.append(at.get_potential_energy())
    assert z1["energy"][tuple(k)] == pytest.approx(np.mean(es), abs=2e-4)  # float32 models
    d = tmp_path / "d.json"
    assert main(["pes-descriptors", str(s1), "-o", str(d)]) == 0
    assert json.loads(d.read_text())["fv_reference"].startswith("structure cell")


def test_reads_the_ensemble_json_written_by_metrics_table(tmp_path, monkeypatch):
    """ensemble.json gives 'manifest' relative to the workflow dir and 'manifest_rel' relative to itself."""
    from ionflow.screening.calculators import read_manifest

    models = tmp_path / "results" / "models"
    for m in ("m0", "m1"):
        (models / m).mkdir(parents=True)
        (models / m / f"{m}.nequip.zip").write_bytes(b"zip")
        (models / m / "manifest.json").write_text(json.dumps(
            {"member": m, "type_names": ["Li", "O"], "r_max": 4.0, "package": f"{m}.nequip.zip"}))
    (models / "ensemble.json").write_text(json.dumps({"members": [
        {"name": m, "manifest": f"results/models/{m}/manifest.json", "manifest_rel": f"{m}/manifest.json"}
        for m in ("m0", "m1")]}))
    for cwd in (tmp_path, tmp_path / "results"):  # works from the workflow dir and elsewhere
        monkeypatch.chdir(cwd)
        mems = read_manifest(models / "ensemble.json")
        assert [m["name"] for m in mems] == ["m0", "m1"]
        assert mems[1]["package"] == str(models / "m1" / "m1.nequip.zip")
