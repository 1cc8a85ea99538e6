"""PES screening branch (Maevskiy et al., Phys. Rev. Research 7, 023167 (2025), re-implemented).

* :mod:`.scan` (``ionflow pes-scan``): frozen-framework energy scan of one mobile ion on a grid.
* :mod:`.levelmap`: exact minimax (bottleneck) level map and percolation energies on a periodic grid.
* :mod:`.descriptors` (``ionflow pes-descriptors``): MPE, free volumes, Xi, CUBE and PNG export.
* :mod:`.rank` (``ionflow rank``): ranking table of many screened structures.
* :mod:`.calculators`: energy-only SevenNet and locality-aware Allegro-ensemble evaluators.
"""
