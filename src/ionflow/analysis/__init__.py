"""Conductivity analysis: FFT MSD/MSCD, tracer and full sigma, nested uncertainty, Arrhenius fits.

Stage modules: ``conductivity`` (one structure, one model, one T, several seeds), ``combine``
(ensemble of models), ``arrhenius`` (temperature series). Physics in
/work/shared/notes/methods-and-anchors.md sections 1 and 3.
"""

#: elementary charge (C) and Boltzmann constant (J/K), exact SI values
E_CHARGE = 1.602176634e-19
K_B = 1.380649e-23
K_B_EV = 8.617333262e-5
#: D in Å^2/fs -> cm^2/s
A2_PER_FS_TO_CM2_PER_S = 1e-16 / 1e-15


def sigma_prefactor(volume_A3: float, temperature_K: float) -> float:
    """S/cm per (e^2 Å^2/fs): sigma = prefactor * sum q^2 D  (D in Å^2/fs, q in e)."""
    # e^2 * (Å^2/fs -> m^2/s) / (V[m^3] kB T) in S/m, then /100 -> S/cm
    return E_CHARGE ** 2 * 1e-5 / (volume_A3 * 1e-30 * K_B * temperature_K) / 100.0
