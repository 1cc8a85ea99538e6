"""File IO: atomic writes, trajectory readers, units."""
