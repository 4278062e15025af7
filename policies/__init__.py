"""Policy presets shipped as YAML (see each file's header for the schema)."""
