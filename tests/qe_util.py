"""Real pw.x runs for tests: a 12-atom Li2O cell (Debian quantum-espresso + quantum-espresso-data)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import require_tool

PSEUDO = Path("/usr/share/espresso/pseudo")
RY_BOHR3_TO_EV_A3 = 13.605693122994 / 0.529177210903**3

LI2O_POSITIONS = """O 0.0 0.0 0.0
O 2.305 2.305 0.0
O 2.305 0.0 2.305
O 0.0 2.305 2.305
Li 1.1525 1.1525 1.1525
Li 3.4575 1.1525 1.1525
Li 1.1525 3.4575 1.1525
Li 3.4575 3.4575 1.1525
Li 1.1525 1.1525 3.4575
Li 3.4575 1.1525 3.4575
Li 1.1525 3.4575 3.4575
Li 3.50 3.4575 3.4575"""


def pw_input(calculation: str, nstep: int = 6, forces: bool = True) -> str:
    """A 12-atom Li2O cell, 25 Ry, gamma point, nosym (MD needs it)."""
    return f"""&CONTROL
  calculation = '{calculation}'
  prefix = 'li2o'
  outdir = './tmp'
  pseudo_dir = '{PSEUDO}'
  nstep = {nstep}
  dt = 20
  tprnfor = {'.true.' if forces else '.false.'}
  tstress = {'.true.' if forces else '.false.'}
/
&SYSTEM
  ibrav = 0, nat = 12, ntyp = 2, ecutwfc = 25, ecutrho = 200, nosym = .true.
/
&ELECTRONS
  conv_thr = 1e-7
/
&IONS
  ion_temperature = 'initial', tempw = 600
/
ATOMIC_SPECIES
Li 6.94 Li.pbesol-s-kjpaw_psl.0.2.1.UPF
O 15.999 O.pbesol-n-kjpaw_psl.0.1.UPF
CELL_PARAMETERS angstrom
4.61 0 0
0 4.61 0
0 0 4.61
ATOMIC_POSITIONS angstrom
{LI2O_POSITIONS}
K_POINTS gamma
"""


def run_pw(workdir: Path, text: str, name: str) -> Path:
    pw = require_tool("pw.x", "quantum-espresso")
    if not (PSEUDO / "Li.pbesol-s-kjpaw_psl.0.2.1.UPF").exists():
        require_tool("__missing_pseudopotentials__", "quantum-espresso-data")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.in").write_text(text)
    out = workdir / f"{name}.out"
    with open(out, "w") as fh:
        subprocess.run([pw, "-in", f"{name}.in"], cwd=workdir, stdout=fh, stderr=subprocess.STDOUT,
                       check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return out


@pytest.fixture(scope="session")
def pw_md(tmp_path_factory) -> Path:
    """A REAL 6-step pw.x MD run of Li2O (about 10-20 s on one core)."""
    return run_pw(tmp_path_factory.mktemp("pwmd"), pw_input("md"), "md")


