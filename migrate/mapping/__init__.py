"""Stage 2, map: the TOML table, transforms, layout converters, and the table linter."""
