"""SevenNet universal-potential labels: a clearly marked surrogate for DFT.

For demos and for users without DFT time. The pretrained SevenNet-0 weights ship inside the
``sevenn`` wheel and load offline. Every frame and every report produced with these labels says
so (``labels=sevennet-0``, :func:`note`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, MissingToolError
from .settings import SevenNetSettings


def labels_name(settings: SevenNetSettings) -> str:
    """Dataset ``labels`` value: ``sevennet-0`` for 7net-0, ``sevennet-mf-0-r2scan`` etc. otherwise."""
    name = settings.model.replace("7net", "sevennet")
    if settings.modal:
        name += f"-{settings.modal.lower()}"
    return name


def note(settings: SevenNetSettings) -> str:
    """The line every output carries."""
    if settings.model == "7net-0" and not settings.modal:
        model = "SevenNet-0"
    else:
        model = f"SevenNet {settings.model}" + (f" (modal {settings.modal})" if settings.modal else "")
    return f"labels: {model} (universal potential), not DFT"


def make_calculator(settings: SevenNetSettings):
    """The ASE calculator (one torch thread; weights loaded from the wheel, offline)."""
    try:
        import torch
        from sevenn.calculator import SevenNetCalculator
    except ImportError as exc:
        raise MissingToolError(f"SevenNet is not installed ({exc.name}): pip install sevenn") from None
    torch.set_num_threads(1)
    kwargs = {"modal": settings.modal} if settings.modal else {}
    try:
        return SevenNetCalculator(settings.model, device=settings.device, **kwargs)
    except (ValueError, KeyError, FileNotFoundError, NotImplementedError) as exc:
        raise InputError("config", f"cannot load SevenNet model '{settings.model}': {exc}".splitlines()[0],
                         field="label.sevennet.model") from None


def evaluate(atoms, calc) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy eV, forces eV/Å, stress eV/Å³ Voigt, ASE sign) of one frame."""
    from ase import Atoms

    a = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    a.calc = calc
    energy = float(a.get_potential_energy())
    forces = np.array(a.get_forces(), dtype=float)
    stress = np.array(a.get_stress(voigt=True), dtype=float)
    return energy, forces, stress
