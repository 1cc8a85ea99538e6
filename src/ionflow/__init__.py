"""ionflow: first-principles MD data -> Allegro ensemble -> LAMMPS MD -> ionic conductivity."""

__version__ = "0.1.0"
